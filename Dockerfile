# wsrelay container image.
#
# Base images are build arguments so that a mirror (or a local image) can be
# used, e.g. docker build --build-arg GO_IMAGE=mirror/golang:1.26 .
# Only classic-builder features are used (no RUN --mount, no COPY --chmod).
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
# A module proxy mirror can be passed the same way.
ARG GOPROXY
WORKDIR /src
# Dependencies first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/wsrelay ./cmd/wsrelay

FROM ${RUNTIME_IMAGE}
# wss:// upstreams need CA certificates; copy them so that any static base
# (even scratch) works.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/wsrelay /wsrelay
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/wsrelay", "healthcheck"]
ENTRYPOINT ["/wsrelay"]
