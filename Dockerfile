# GatePulse container image (SPEC HA-4): the `gp` binary on a distroless base.
#
#   docker build -t gatepulse:0.1.0 .
#   docker run --rm -p 8080:8080 -v gatepulse-data:/data \
#     -e GATEPULSE_ADMIN_TOKEN=… -e GATEPULSE_MASTER_KEY=… gatepulse:0.1.0
#
# The build context is the repository root: Cargo loads every workspace member's
# manifest, and router/build.rs embeds the operator console from ui/console/ into the
# binary (.dockerignore keeps out what the build does not read). The image runs
# `gp serve` as uid 10001 with its data directory (the embedded store, the node id)
# in the /data volume; configuration is by GATEPULSE_* environment variables
# (docs/configuration.md). Helm chart and Kubernetes guide: deploy/helm/gatepulse/,
# docs/production/kubernetes.md. Pin both base images by digest in your own builds.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The registry and target caches speed up rebuilds (BuildKit); the binary is copied
# out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gatepulse --bin gp \
    && install -D -m 0755 target/release/gp /out/gp \
    && install -d -m 0700 /out/data

# Distroless "cc": glibc, libgcc and CA certificates, no shell or package manager
# (the "nonroot" tag is the same image with a non-root default user; ours is 10001).
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="gatepulse" \
      org.opencontainers.image.description="GatePulse webhook and event router (gp serve)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/gp /usr/local/bin/gp
COPY --from=builder --chown=10001:10001 /out/data /data
ENV GATEPULSE_LISTEN=0.0.0.0:8080 \
    GATEPULSE_DATA_DIR=/data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["gp"]
CMD ["serve"]
