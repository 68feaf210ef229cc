# syntax=docker/dockerfile:1
# One image for every role: `switchboard gateway|router|presence`, or no
# argument for the all-in-one mode. Build with BuildKit (the default builder):
#   docker build -t switchboard .

# --- web client -------------------------------------------------------------
# The gateway serves the page and the Rust build embeds web/dist, so the web
# client is built first.
FROM node:22-bookworm-slim AS web
WORKDIR /src/web
# Dependencies first: this layer is reused until the lockfile changes.
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# --- server -----------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=web /src/web/dist web/dist
# The registry and target directories live in BuildKit caches, so a source
# change recompiles only the workspace crates. The binary is copied out in the
# same step because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p switchboard-server -p switchboard-cli \
    && install -D -m 0755 target/release/switchboard /out/switchboard \
    && install -D -m 0755 target/release/sb /out/sb \
    && mkdir -p /out/data

# --- runtime ----------------------------------------------------------------
# glibc, libgcc and CA certificates (for tls:// NATS), no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/switchboard /usr/local/bin/switchboard
# The CLI, for `docker exec … sb` / `kubectl exec … -- sb`.
COPY --from=build /out/sb /usr/local/bin/sb
# Writable home for the all-in-one mode's embedded store; unused in Kubernetes.
COPY --from=build --chown=65532:65532 /out/data /data
ENV SB_DATA_DIR=/data \
    SB_LISTEN=0.0.0.0:7300
# Numeric, so Kubernetes can check runAsNonRoot against it.
USER 65532:65532
# 7300 clients (gRPC, gRPC-Web, health, web page) · 7310 health of router and
# presence · 9090 Prometheus metrics.
EXPOSE 7300 7310 9090
ENTRYPOINT ["/usr/local/bin/switchboard"]
