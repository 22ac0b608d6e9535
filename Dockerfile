# One Fluxo node. Runs the TypeScript sources with tsx (no separate emit step): what runs is what
# the tests ran. Node 22 (package.json engines); uWebSockets.js (@based/uws) loads a native binary per
# Node ABI: the Node 22 one needs glibc ≥ 2.27, met by bookworm's 2.36 (its Node 24 one needs 2.38).
FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY patches ./patches
# Dev dependencies too: tsx runs the server. --ignore-scripts: no dependency's install script is
# needed; ours (postinstall: patch-package) runs explicitly — patches/ fixes a postgres.js crash.
RUN npm ci --no-audit --no-fund --ignore-scripts --include=dev && npx patch-package && npm cache clean --force
COPY tsconfig.json ./
COPY server ./server
COPY shared ./shared
COPY migrations ./migrations
COPY scripts ./scripts
COPY web ./web
# The dashboard page (web/dist), bundled with esbuild.
RUN node --import tsx scripts/build-web.ts
USER node
EXPOSE 8080
# SIGTERM drains (SHUTDOWN_GRACE_MS); give `docker stop` longer than that.
STOPSIGNAL SIGTERM
CMD ["node", "--import", "tsx", "server/main.ts"]
