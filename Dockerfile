# Tern in a container. Build: docker build -t tern .
# Run:   docker run -d --name tern -p 25:2525 -v tern-queue:/opt/tern/queue -v $PWD/config:/opt/tern/config tern
# Flush the retry queue and reload config: docker kill -s HUP tern
# The shipped config listens on 127.0.0.1; in a container set `listen=0.0.0.0:2525` in smtp.ini.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY plugins ./plugins
COPY test ./test
COPY bench ./bench
RUN npx tsc -p . && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /opt/tern
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/plugins ./dist/plugins
COPY package.json README.md ./
COPY bin ./bin
COPY config ./config
RUN mkdir -p queue && chown -R node:node queue
USER node
VOLUME ["/opt/tern/config", "/opt/tern/queue"]
EXPOSE 25 587 2525
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:8025/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
CMD ["node", "bin/tern", "start", "--config", "/opt/tern/config", "--queue", "/opt/tern/queue"]
