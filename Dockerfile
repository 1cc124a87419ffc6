# syntax=docker/dockerfile:1
# Build: libpq is compiled into the binary (pq-sys "bundled"), so the runtime image needs
# nothing but glibc.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin identity-api \
 && cp target/release/identity-api /identity-api

# Run: distroless, non-root. It listens on 0.0.0.0, so it starts only once an API key exists:
# set IDENTITY__AUTH__BOOTSTRAP_KEY (stored at first start), or create keys with
# `identity-api keys create` against the same database.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /identity-api /usr/local/bin/identity-api
ENV IDENTITY__SERVER__HOST=0.0.0.0 \
    IDENTITY__LOG__FORMAT=json
EXPOSE 8080
USER nonroot
ENTRYPOINT ["/usr/local/bin/identity-api"]
