# syntax=docker/dockerfile:1
# cachegate: Node 22 runs the TypeScript sources directly (type stripping), so the image
# needs production dependencies and src/, no build step.

FROM node:22-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only: the pinned node@22 devDependency is not needed on a Node 22 image.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:22-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json config.example.yaml ./
COPY bin ./bin
COPY src ./src
RUN mkdir -p /var/lib/cachegate/cache && chown -R node:node /var/lib/cachegate
# The image's unprivileged user.
USER node
EXPOSE 8080
# Listens where CACHEGATE__LISTEN says; the health check assumes the default port 8080.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# --no-memory-reducer, --no-flush-bytecode: see bin/cachegate.js.
ENTRYPOINT ["node", "--no-memory-reducer", "--no-flush-bytecode", "bin/cachegate.js"]
CMD ["--config", "env"]
