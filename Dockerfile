# syntax=docker/dockerfile:1
#
# FreeLLMAPI container image: the gateway binary with the dashboard embedded, on a distroless base (glibc and
# libgcc only: no shell, no package manager), running as an unprivileged user (65532) with its database and key
# file in the /data volume.
#
#   docker build -t freellmapi .                                   # from source: the default target, `runtime`
#   docker run -d -p 127.0.0.1:3001:3001 -v freellmapi-data:/data freellmapi
#   docker logs <container>                                        # the first start prints the admin password
#
# The release workflow builds the `release` target instead: the same image around binaries it cross-compiled per
# architecture (dist/linux-amd64/freellmapi, dist/linux-arm64/freellmapi), so a multi-platform image needs no
# emulation. Build arguments GIT_COMMIT and SOURCE_DATE_EPOCH stamp `freellmapi --version` (the build context has
# no .git).

ARG RUST_VERSION=1.95
ARG NODE_VERSION=20

# The dashboard: JavaScript, the same on every platform, so it is built once on the build machine's own platform.
FROM --platform=$BUILDPLATFORM node:${NODE_VERSION}-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm install --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build -- --outDir /dashboard --emptyOutDir

# The gateway binary. With FREELLMAPI_WEB_DIST set, crates/web-assets embeds that directory and does not run npm.
FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
COPY --from=web /dashboard /dashboard
ARG GIT_COMMIT=""
ARG SOURCE_DATE_EPOCH=""
ENV FREELLMAPI_WEB_DIST=/dashboard \
    FREELLMAPI_GIT_COMMIT=${GIT_COMMIT} \
    SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p freellmapi \
    && install -D -m 0755 target/release/freellmapi /out/freellmapi

# /data, owned by the runtime user: a new named volume takes this ownership, so the gateway can write to it.
FROM --platform=$BUILDPLATFORM debian:bookworm-slim AS datadir
RUN mkdir -p /data && chown 65532:65532 /data && chmod 0700 /data

FROM gcr.io/distroless/cc-debian12:nonroot AS base
COPY --from=datadir --chown=65532:65532 /data /data
# Inside the container the gateway listens on every interface; what the host exposes is decided by `-p`.
# Docker sends SIGKILL 10 s after SIGTERM unless told otherwise (`docker stop -t`, compose's stop_grace_period):
# the drain stays below that here; docker-compose.yml and the Kubernetes manifests raise both together.
ENV HOST_BIND=0.0.0.0 \
    PORT=3001 \
    DATA_DIR=/data \
    SHUTDOWN_DRAIN_TIMEOUT_MS=8000
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3001
STOPSIGNAL SIGTERM
# The binary's own probe (the image has no curl): GET /api/ping on loopback, on $PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/freellmapi", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/freellmapi"]
CMD ["serve"]

# Release images: binaries built by .github/workflows/release.yml, one per architecture.
FROM base AS release
ARG TARGETARCH
COPY --chmod=0755 dist/linux-${TARGETARCH}/freellmapi /usr/local/bin/freellmapi

# The default target: the binary built above from this source tree.
FROM base AS runtime
COPY --from=builder /out/freellmapi /usr/local/bin/freellmapi
