# syntax=docker/dockerfile:1
# Ladder and the Acme Bank demo in one image.
#
#   docker build -t ladder:local .
#   docker run --rm -p 8080:8080 -e LADDER_SERVER__BIND=0.0.0.0:8080 -e LADDER_SERVER_KEY=… ladder:local
#
# docker-compose.yml runs it with PostgreSQL and the demo. Both binaries embed their templates and
# stylesheets; the runtime needs only OpenSSL 3, CA certificates and config/.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# gcc, pkg-config and libssl-dev come with the image; named here because the build needs them
# (openssl-sys for josekit, and the bundled libpq is built with OpenSSL).
RUN apt-get update \
    && apt-get install -y --no-install-recommends pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ladder \
    && cargo build --release --locked -p ladder-demo \
    && mkdir -p /out \
    && cp target/release/ladder target/release/ladder-demo /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libssl3 ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin ladder
WORKDIR /app
COPY --from=build /out/ladder /out/ladder-demo /usr/local/bin/
COPY config/ /app/config/
# data/ holds the SQLite database and generated keys when no PostgreSQL URL or server key is given;
# seed/ receives the demo's settings from `ladder-demo seed` (a shared volume in docker-compose.yml).
RUN mkdir -p /app/data /app/seed && chown ladder:ladder /app/data /app/seed
USER ladder
ENV LADDER_SERVER__BIND=0.0.0.0:8080 \
    DEMO_BIND=0.0.0.0:3000
EXPOSE 8080 3000
VOLUME ["/app/data"]
CMD ["ladder", "serve"]
