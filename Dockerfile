# syntax=docker/dockerfile:1
# The worker and the `migration` CLI as an image: installed from the lockfile, compiled, with the
# prebuilt workflow bundle (lib/workflow-bundle.js, whose hash is the worker's build id), run as
# the unprivileged `node` user. docker-compose.temporal.yml builds it as its `worker` service.
#
#   docker build -t ec2-gpu-migration .
#   docker run --rm -e TEMPORAL_ADDRESS=… -e AWS_REGION=… ec2-gpu-migration                 # a worker
#   docker run --rm -e TEMPORAL_ADDRESS=… ec2-gpu-migration node lib/client.js status migrate-my-app
#
# A glibc image, not Alpine: the Temporal SDK's native core is built for glibc.
FROM node:24.19.0-bookworm-slim AS base
WORKDIR /app

FROM base AS build
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# lib/ (tsc -p tsconfig.build.json), lib/workflow-bundle.js and lib/workflow-bundle-sealed.js (node lib/bundle.js).
RUN npm run build

FROM base AS runtime
# The SDK's native core checks Temporal's TLS certificate (Temporal Cloud) against the system's CAs.
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/lib ./lib
ENV NODE_ENV=production \
  NODE_OPTIONS=--max-old-space-size=384
USER node
EXPOSE 9464 8081
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "require('node:http').get('http://127.0.0.1:8081/readyz', (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1))"]
# Metrics and health checks on: a worker in a container is watched from outside.
CMD ["node", "lib/client.js", "worker", "--metrics", "0.0.0.0:9464", "--health", "0.0.0.0:8081"]
