# resnet-serve, CPU image. See deploy/README.md for building, pushing and deploying it.
#
#   docker build -t resnet-serve:0.1.0 .                         # models mounted at /models
#   docker build --target baked -t resnet-serve:0.1.0-models .   # bakes ./models (MODEL_REPOSITORY_DIR)
#   docker build --target baked-default -t resnet-serve:0.1.0-resnet20 .
#
# Stages: build (npm ci + tsc, the server and the page) -> app (production dependencies, compiled code, tini, non-root
# user) -> runtime (default), baked, baked-default. The CUDA variant is Dockerfile.cuda.

ARG NODE_IMAGE=docker.io/library/node:26-trixie-slim

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
# Lets a build behind a TLS-intercepting proxy trust its CA (a path inside the build, e.g. a
# volume mounted by scripts/container-check.sh). Build arguments are not kept in the image.
ARG NODE_EXTRA_CA_CERTS=
WORKDIR /src
# onnxruntime-node's CPU build ships inside its npm package; package.json's allowScripts
# denies its install script (which would download the CUDA libraries from outside the npm
# registry), and "skip" says the same to an npm that does not read allowScripts.
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    npm_config_audit=false \
    npm_config_fund=false \
    npm_config_update_notifier=false
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm,sharing=locked npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# The repository's tsconfig also compiles test/ and bench/, which the image does not ship.
RUN printf '%s\n' '{"extends": "./tsconfig.json", "include": ["src/**/*.ts"]}' > tsconfig.image.json \
 && npx tsc -p tsconfig.image.json \
 && test -f dist/src/server.js
# The page at GET / (served from dist/web, beside dist/src): page.ts compiled, the HTML and CSS
# copied, as `npm run build` does.
COPY tsconfig.web.json ./
COPY web ./web
RUN npx tsc -p tsconfig.web.json \
 && cp web/*.html web/*.css dist/web/ \
 && test -f dist/web/index.html

# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS app
ARG NODE_EXTRA_CA_CERTS=
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="resnet-serve" \
      org.opencontainers.image.description="HTTP model server for ResNet ONNX image classifiers (KServe v1/v2 protocols), CPU build" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/node:26-trixie-slim"

# tini is PID 1: it forwards SIGTERM to node, which drains and exits 0 on its own, and it reaps
# zombies. Node as PID 1 would also ignore a SIGTERM that arrives before its handlers exist
# (during model load), leaving Kubernetes to wait out the whole grace period.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

WORKDIR /app
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    npm_config_audit=false \
    npm_config_fund=false \
    npm_config_update_notifier=false
COPY package.json package-lock.json ./
# onnxruntime-node ships its native binaries for every OS and CPU (about 220 MB for Windows and
# macOS alone): keep this platform's only.
RUN --mount=type=cache,target=/root/.npm,sharing=locked npm ci --omit=dev --no-audit --no-fund \
 && ort=node_modules/onnxruntime-node/bin/napi-v6 \
 && find "$ort" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find "$ort/linux" -mindepth 1 -maxdepth 1 ! -name "$(node -p process.arch)" -exec rm -rf {} + \
 && test -f "$ort/linux/$(node -p process.arch)/onnxruntime_binding.node"
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/web ./dist/web
# The trained default model (copied into an empty /models at startup) and the class names the
# model builder writes next to the models it builds.
COPY assets ./assets
# The HTTP API's contract, served at /openapi.yaml, /openapi.json and /docs. The server finds it
# in its project root, the folder holding package.json and assets/: here /app.
COPY openapi.yaml ./
# The gRPC service definitions, loaded at startup from /app/proto when GRPC_PORT is not 0.
COPY proto ./proto

# The model repository. It belongs to the runtime user so that, when it is empty and writable
# (an emptyDir in Kubernetes), the server can copy its default model into it; mount a volume
# here to serve your own models. Everything else stays root-owned, so a read-only root
# filesystem costs nothing: the server writes nowhere but here (and /tmp, if it is mounted).
RUN mkdir -p /models && chown 1000:1000 /models
# glibc malloc: allocations from 128 KiB up always get their own mmap, returned to the system
# when freed. Without it glibc raises that threshold after the first large free, and each
# retired model version's weights stay in the malloc arenas of the worker threads that loaded
# them: 20 load/unload cycles of ResNet-50 left RSS at 602 MB against 284 MB after the first;
# with it, 178 against 166 (BENCHMARKS.md, model load/unload cycles). Inference time unchanged
# (ResNet-50, batch 8, one session in one process, median of 20 runs: 143 ms with and without;
# onnxruntime keeps its own arena for activations).
ENV MODEL_REPOSITORY=/models \
    HOST=0.0.0.0 \
    PORT=8080 \
    GRPC_PORT=8081 \
    MALLOC_MMAP_THRESHOLD_=131072
# uid/gid 1000 is the base image's `node` user; numeric so that runAsNonRoot can check it.
USER 1000:1000
# HTTP (PORT) and gRPC (GRPC_PORT: Open Inference Protocol and grpc.health.v1.Health).
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/v2/health/ready').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/server.js"]

# ---------------------------------------------------------------------------------------------
# A model repository from the build context (one folder per model), read-only and root-owned.
FROM app AS baked
ARG MODEL_REPOSITORY_DIR=models
COPY --chown=0:0 ${MODEL_REPOSITORY_DIR}/ /models/
# The baked repository is what this image serves; never copy the default model beside it.
ENV SEED_DEFAULT_MODEL=false

# ---------------------------------------------------------------------------------------------
# The trained default model (ResNet-20, CIFAR-10) baked into a read-only, root-owned /models:
# for demos and smoke tests that want a ready model without a writable volume.
FROM app AS baked-default
USER 0:0
RUN cp -r assets/models/resnet20-cifar10 /models/resnet20-cifar10 \
 && chown -R 0:0 /models \
 && chmod 0755 /models
USER 1000:1000
ENV SEED_DEFAULT_MODEL=false

# ---------------------------------------------------------------------------------------------
# Default target: models come from a volume mounted at /models.
FROM app AS runtime
