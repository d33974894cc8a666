# syntax=docker/dockerfile:1
#
# rds-iam-proxy: a static binary on distroless, as a non-root user.
#
#   docker build -t rds-iam-proxy --build-arg VERSION=$(git describe --always --dirty) .
#   docker run --rm rds-iam-proxy version
#
# The image has no shell, so there is no HEALTHCHECK here: the admin endpoint
# (/startup, /liveness, /readiness) is off unless --admin-address is set, so
# the image cannot know where to look. Kubernetes ignores HEALTHCHECK anyway
# and uses the probes in deploy/kubernetes/; in compose, add an exec-form
# healthcheck that runs this binary once it has a `wait` command.
#
# deploy/dockerfile_test.go runs the `go build` line below (same environment, same
# flags) and checks that the binary is static and runs `version`; keep the
# command on the one RUN line that contains "go build".

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/rds-iam-proxy ./cmd/rds-iam-proxy
# Directories the non-root user may write in: named volumes mounted here
# start with this ownership (compose shares the emulator's CA through one);
# /run/rds-iam-proxy is for unix sockets when no volume is mounted there.
RUN mkdir -p /out/var/lib/rds-iam-proxy /out/run/rds-iam-proxy

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot
# (65532), no shell, no libc. The binary is static (CGO_ENABLED=0).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rds-iam-proxy /rds-iam-proxy
COPY --from=build --chown=65532:65532 /out/var/lib/rds-iam-proxy /var/lib/rds-iam-proxy
COPY --from=build --chown=65532:65532 /out/run/rds-iam-proxy /run/rds-iam-proxy
USER 65532:65532
# Postgres and MySQL listeners and the admin endpoint, when configured so.
EXPOSE 5432 3306 9801
ENTRYPOINT ["/rds-iam-proxy"]
CMD ["help"]
