# Tern in a container. Build: docker build -t tern .
# Run:   docker run -d --name tern -p 25:2525 -e TERN_ME=mx1.example.com \
#          -v tern-queue:/opt/tern/queue -v $PWD/config:/opt/tern/config tern
# Flush the retry queue and reload config: docker kill -s HUP tern
# Look at the queue: docker exec tern tern queue ls
# The image's config/smtp.ini (contrib/docker/smtp.ini) listens on 0.0.0.0:2525; the admin API
# stays on the container's loopback (127.0.0.1:8025), where `tern health` and `tern queue` find it.
# scripts/docker-e2e.sh builds and runs this image in CI.

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
COPY contrib/docker/smtp.ini ./config/smtp.ini
RUN mkdir -p queue && chown -R node:node queue && ln -s /opt/tern/bin/tern /usr/local/bin/tern
USER node
VOLUME ["/opt/tern/config", "/opt/tern/queue"]
# The SMTP listener of contrib/docker/smtp.ini; publish it as 25 (or 587) on the host.
EXPOSE 2525
STOPSIGNAL SIGTERM
# `tern health` asks the admin API wherever the mounted config's http.ini puts it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["tern", "health", "--config", "/opt/tern/config"]
CMD ["tern", "start", "--config", "/opt/tern/config", "--queue", "/opt/tern/queue"]
