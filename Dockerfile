# vpc-resolver in a container: a Rust builder stage, then a small Debian runtime with only the binary.
#
#   podman build --format docker -t vpc-resolver:0.1.0 .                 (or docker build -t vpc-resolver:0.1.0 .)
#   podman run --rm -p 127.0.0.1:5300:53/udp -p 127.0.0.1:5300:53/tcp vpc-resolver:0.1.0     # the embedded lab
#   dig @127.0.0.1 -p 5300 ec2.us-east-1.amazonaws.com                   # -> the lab's private addresses
#   podman run --rm -v "$PWD/zones/scenarios:/topology:ro" vpc-resolver:0.1.0 /topology/hybrid-s3.yaml
#
# From a binary built outside (how CI builds it, offline): a named build context replaces the `builder` stage,
# so the directory must hold the binary as `vpc-resolver`:
#   cargo build --release --locked && mkdir -p ctx && cp target/release/vpc-resolver ctx/
#   podman build --format docker --pull=never --build-context builder=ctx -t vpc-resolver:0.1.0 .
#
# Running it: see "Container" in README.md (capabilities, read-only root, Kubernetes, compose).

# The builder's image: the rust-version of Cargo.toml. An offline build names a local toolchain image here
# (README.md, "Building from source offline").
ARG RUST_IMAGE=docker.io/library/rust:1.88-slim-bookworm

FROM ${RUST_IMAGE} AS builder
# The same registry path whichever toolchain image is used, so a prepared registry can be mounted there;
# CARGO_NET_OFFLINE=true (a build argument, which RUN sees as the environment) builds from it alone.
ENV CARGO_HOME=/usr/local/cargo
ARG CARGO_NET_OFFLINE=false
WORKDIR /build
# The whole source (.dockerignore leaves out target/ and .git): a manifest that names benches, examples or
# tests needs their files present even to build the binary.
COPY . .
RUN cargo build --release --locked --bin vpc-resolver \
    && install -m 0755 target/release/vpc-resolver /vpc-resolver

# The binary links only glibc and libgcc_s (no musl target for a static build here), so the runtime is Debian
# slim of the builder's release.
FROM docker.io/library/debian:bookworm-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="vpc-resolver" \
      org.opencontainers.image.description="A DNS server that answers the way the Route 53 VPC Resolver answers inside an AWS VPC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
COPY --from=builder /vpc-resolver /usr/local/bin/vpc-resolver
# Port 53 as a non-root user needs CAP_NET_BIND_SERVICE in the process's effective set. Docker, containerd and
# CRI-O give a non-root user no capabilities of its own (podman does only for an explicit --cap-add), so the
# binary carries it as a file capability (`setcap cap_net_bind_service=+ep`); the runtime must still keep the
# capability in the container's bounding set (the default set does; with --cap-drop ALL add it back).
# setcap is not in the slim image and installing it needs the network, so the xattr is written with perl
# (Essential in Debian): setxattr(2) of security.capability, VFS_CAP_REVISION_2 | effective, permitted = bit 10.
RUN set -eu; \
    case "$(uname -m)" in \
      x86_64) nr=188 ;; aarch64|riscv64) nr=5 ;; ppc64le) nr=209 ;; s390x) nr=224 ;; \
      *) echo "setxattr: no syscall number known for $(uname -m)" >&2; exit 1 ;; \
    esac; \
    perl -e 'my ($nr, $path) = @ARGV; my $name = "security.capability"; \
             my $cap = pack("V5", 0x02000001, 1 << 10, 0, 0, 0); \
             syscall($nr + 0, $path, $name, $cap, length($cap), 0) == 0 or die "setxattr $path: $!\n";' \
         "$nr" /usr/local/bin/vpc-resolver
# Logs are read by collectors, not terminals: no colour codes.
ENV NO_COLOR=1
# "nonroot" of distroless; no passwd entry is needed.
USER 65532:65532
EXPOSE 53/udp 53/tcp
# Asks the server itself (`id.server. CH TXT`, answered without upstream); needs no tool the image lacks.
# (podman keeps HEALTHCHECK only with --format docker.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/vpc-resolver", "probe", "127.0.0.1:53", "--timeout", "3"]
# Every address, IPv4 and IPv6, on port 53 over UDP and TCP; arguments after the image name are appended
# (Kubernetes `args` too): topology files and further `serve` options.
ENTRYPOINT ["/usr/local/bin/vpc-resolver", "serve", "--listen", "0.0.0.0:53", "--listen", "[::]:53"]
# With no arguments: the embedded lab, for clients that reach it through a published port. Those queries arrive
# from the container network's gateway (10.88.0.1 under podman, 172.17.0.1 under Docker), not from loopback, so
# the private ranges are allowed and, being outside every VPC, get the lab VPC's view. Any argument replaces
# this whole line.
CMD ["--default-view", "lab", \
     "--allow", "10.0.0.0/8", "--allow", "172.16.0.0/12", "--allow", "192.168.0.0/16", \
     "--allow", "100.64.0.0/10", "--allow", "fc00::/7"]
