# One Fluxo node: the server compiled to JavaScript (no tsx, no TypeScript at run time), production
# dependencies only, run as the unprivileged `node` user.
#
# Base image: uWebSockets.js (@based/uws 6.0.1) loads a native binary built for one Node ABI and glibc;
# its Node 22 binary needs glibc >= 2.27, met by bookworm's 2.36 (its Node 24 one needs 2.38, a Debian 13
# base). Every stage uses the same base, so what npm installs is built for the libc it runs on.
#
# Docker does not run on the machines CI uses: `npm run smoke:dist` builds these stages from this file
# on the local machine (scripts/dockerfile-local.ts) and runs the result the way `docker run` would.

FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
# --ignore-scripts: no dependency needs its install script; ours (postinstall: patch-package) runs by
# name. --error-on-fail: patch-package fails on a patch that does not apply only where it detects CI.
RUN npm ci --no-audit --no-fund --ignore-scripts && npm run postinstall -- --error-on-fail
COPY tsconfig.json tsconfig.build.json ./
COPY server ./server
COPY shared ./shared
COPY scripts ./scripts
COPY migrations ./migrations
COPY web ./web
RUN npm run build:dist

FROM node:22-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY patches ./patches
# The production install, patched as in development: patches/ fixes a postgres.js crash on a lost connection.
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm run postinstall -- --error-on-fail

FROM node:22-bookworm-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production
# package.json for "type": "module" (dist/ is ESM); files stay root's, so the server cannot rewrite itself.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
EXPOSE 8080
# Liveness: /health answers while the process serves (/ready also needs the database and Redis). No
# curl in the slim image: Node's fetch. PORT is read as the server reads it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM drains (SHUTDOWN_GRACE_MS, 10 s by default, then a hard stop 2 s later): give `docker stop`
# longer than that (-t 15; compose.yaml sets stop_grace_period). Node is PID 1 itself (exec form, no
# shell, no init): main.ts handles SIGTERM and SIGINT, and the server starts no child process to reap.
STOPSIGNAL SIGTERM
CMD ["node", "dist/server/main.js"]
