# syntax=docker/dockerfile:1
#
# dbsync container image: a static producer binary (plus the consumer, handy
# for debugging: `kubectl exec dbsync-0 -- /consumer -url ...`) on distroless.
#
#   docker build -t registry.example.com/dbsync:v1.0.0 .    # the tag deploy/base pins
#   docker run --rm -v "$PWD/config.json:/etc/dbsync/config.json:ro" registry.example.com/dbsync:v1.0.0
#
# deploy/deploy_test.go parses this file and builds the binary with the exact
# `go build` command of the RUN lines below; keep one `go build` per RUN line.

# ---- build stage ------------------------------------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first, so they are cached across source changes.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/producer ./cmd/producer
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/consumer ./cmd/consumer
# The working directory of the final image, owned by the non-root user so the
# bolt checkpoint file can be created there without a volume (in Kubernetes
# /data is the StatefulSet's volume, made writable through fsGroup).
RUN mkdir -p /out/data

# ---- final stage ------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/producer /producer
COPY --from=build /out/consumer /consumer
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
# 65532 is distroless's "nonroot" user; numeric so runAsNonRoot can verify it.
USER 65532:65532
# HTTP.Listen (default ":8080"): /metrics, /livez, /readyz.
EXPOSE 8080
# Exec form: the producer is PID 1 and receives SIGTERM itself (no shell), so
# it drains, checkpoints and exits 0 on `docker stop` / pod termination.
ENTRYPOINT ["/producer"]
CMD ["-config", "/etc/dbsync/config.json"]
