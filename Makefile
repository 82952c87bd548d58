# Makefile — shortcuts; scripts/test.sh is the one test command.

GO ?= go

.PHONY: test test-faults demo build run bench fmt vet

## test: install missing test servers (as root), go vet, and run every test against real servers
test:
	./scripts/test.sh

## test-faults: fault-injection suite (broker, MariaDB and network faults under load, checked for loss, order and values); writes docs/reliability.md
test-faults:
	DBSYNC_WRITE_RELIABILITY_DOC=1 $(GO) test -count=1 -v -timeout 15m ./test/faults/

## demo: throwaway MariaDB + producer (embedded JetStream) + consumer + a small workload
demo:
	./scripts/demo.sh

## build: static producer binary in bin/producer
build:
	CGO_ENABLED=0 $(GO) build -o bin/producer ./cmd/producer

## run: run the producer from source (pass flags with ARGS="...")
run:
	$(GO) run ./cmd/producer $(ARGS)

## bench: source and sink ceilings, end to end, latency and peak RSS on this machine; writes docs/benchmarks.md (flags with ARGS="...")
bench:
	$(GO) run ./cmd/bench $(ARGS)

## fmt: gofmt every Go file
fmt:
	$(GO) fmt ./...

## vet: go vet every package
vet:
	$(GO) vet ./...
