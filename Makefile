# Makefile — shortcuts; scripts/test.sh is the one test command.

GO ?= go

.PHONY: test demo build run bench fmt vet

## test: install missing test servers (as root), go vet, and run every test against real servers
test:
	./scripts/test.sh

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
