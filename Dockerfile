# selfheal: one container, one PID 1 supervising Redis, the demo app and the proxy.
#
#   docker build -t selfheal .
#   docker run -d -p 8080:8080 -v selfheal-data:/data selfheal
#
# Works with the classic builder and with BuildKit (no BuildKit-only syntax).
# Without a registry, ci/docker-stand-ins.sh makes local stand-ins for the two
# base images (docs/container.md).

# ---------------------------------------------------------------- build ----
FROM rust:1-bookworm AS build
WORKDIR /src
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Dependencies first, against a dummy crate, so that this layer is cached
# until Cargo.toml or Cargo.lock change. Same flags and target as
# ci/build-static.sh (a static-pie binary: see that script for why).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/integration tests/container \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && : > tests/integration/main.rs \
    && : > tests/container/main.rs \
    && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --bin selfheal \
         --target "$(rustc -vV | sed -n 's/^host: //p')" \
    && cargo clean --release --package selfheal --target "$(rustc -vV | sed -n 's/^host: //p')" \
    && rm -rf src

COPY src ./src
COPY ci/build-static.sh ./ci/
RUN install -D -m 0755 "$(ci/build-static.sh)" /out/selfheal \
    && /out/selfheal --version

# -------------------------------------------------------------- runtime ----
FROM debian:bookworm-slim

ARG VERSION=0.1.0
ARG SOURCE_URL=https://github.com/selfheal/selfheal
LABEL org.opencontainers.image.title="selfheal" \
      org.opencontainers.image.description="PID-1 process supervisor with a self-healing reverse proxy, demo app and Redis in one container" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# Fixed ids so that volumes and Kubernetes fsGroup/runAsUser can name them:
# redis 999:999 (as the official redis image), selfheal 10001:10001.
# Redis' own package keeps an existing redis user.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN if ! getent group redis >/dev/null; then groupadd --system --gid 999 redis; fi \
    && if ! getent passwd redis >/dev/null; then \
         useradd --system --uid 999 --gid redis --home-dir /var/lib/redis \
                 --no-create-home --shell /usr/sbin/nologin redis; \
       fi \
    && groupadd --system --gid 10001 selfheal \
    && useradd --system --uid 10001 --gid selfheal --home-dir /nonexistent \
               --no-create-home --shell /usr/sbin/nologin selfheal \
    && apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
    && install -d -o redis -g redis -m 0750 /data \
    && install -d -o root -g root -m 0755 /run/selfheal /etc/selfheal

COPY --from=build /out/selfheal /usr/local/bin/selfheal
COPY supervisor.toml /etc/selfheal/supervisor.toml

# Overrides the shipped supervisor.toml reads (docs/container.md).
ENV SELFHEAL_CONFIG=/etc/selfheal/supervisor.toml \
    SELFHEAL_DATA=/data \
    SELFHEAL_RUN=/run/selfheal \
    SELFHEAL_REDIS_USER=redis \
    SELFHEAL_APP_USER=selfheal

VOLUME /data
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["selfheal", "health"]

# selfheal is PID 1 (no tini, no shell): it reaps, forwards and drops
# privileges per child, so it starts as root.
WORKDIR /
ENTRYPOINT ["selfheal"]
