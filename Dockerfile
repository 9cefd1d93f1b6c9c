# vpc-resolver in a container: a Rust builder stage, then a small Debian runtime with only the binary.
#
#   docker build -t vpc-resolver .
#   docker run --rm -p 5300:53/udp -p 5300:53/tcp vpc-resolver                      # the embedded default lab
#   docker run --rm -v "$PWD/zones/scenarios:/topology:ro" vpc-resolver /topology/hybrid-s3.yaml --upstream 192.0.2.53
#
# The entrypoint is `vpc-resolver serve --listen 0.0.0.0:53`; arguments after the image name are topology files
# and further `serve` options (examples/hybrid/compose.yaml adds --listen-topology=53 and --upstream).
# The binary carries cap_net_bind_service, so the numeric non-root user can bind port 53 as long as the container
# keeps that capability (Docker's default set does; with --cap-drop ALL add --cap-add NET_BIND_SERVICE).

# The toolchain of rust-version in Cargo.toml.
ARG RUST_VERSION=1.88

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /build
# Dependencies first, against stub sources, so that editing the sources reuses this layer.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src tests/it \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/it/main.rs \
    && cargo build --release --locked --bin vpc-resolver \
    && rm -rf src tests
COPY src src
COPY zones zones
# COPY keeps the files' old timestamps; touch them so cargo rebuilds over the stub's artifacts.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin vpc-resolver \
    && install -m 0755 target/release/vpc-resolver /vpc-resolver

# The binary links only glibc and libgcc_s (no musl target for a static build here), so the runtime is Debian
# slim of the builder's release.
FROM debian:bookworm-slim
COPY --from=builder /vpc-resolver /usr/local/bin/vpc-resolver
# setcap is needed only here: install it, set the capability, remove it again.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libcap2-bin \
    && setcap cap_net_bind_service=+ep /usr/local/bin/vpc-resolver \
    && apt-get purge -y --auto-remove libcap2-bin \
    && rm -rf /var/lib/apt/lists/*
# "nonroot" of distroless; no passwd entry is needed.
USER 65532:65532
EXPOSE 53/udp 53/tcp
ENTRYPOINT ["/usr/local/bin/vpc-resolver", "serve", "--listen", "0.0.0.0:53"]
