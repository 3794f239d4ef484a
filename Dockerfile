# Multi-stage build: compile with the full toolchain, ship only the binary on a slim base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked && strip target/release/shopify-sync

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 shopify-sync
COPY --from=build /src/target/release/shopify-sync /usr/local/bin/shopify-sync
USER shopify-sync
EXPOSE 8080 9091
ENTRYPOINT ["shopify-sync"]
CMD ["serve"]
