# One image for both process groups (fly.toml): the API and the workers.
# Node 24 runs the TypeScript sources directly (type stripping): no build step.
FROM node:24-slim

WORKDIR /app
# Production dependencies only. Optional ones are the embedded PostgreSQL
# binaries (a deployment always sets DATABASE_URL) and pg's Cloudflare shim.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional && npm cache clean --force

COPY src ./src
COPY sql ./sql
COPY scripts ./scripts

# Retention snapshots land here unless SNAPSHOT_DIR says otherwise (mount a volume).
RUN mkdir -p /data && chown node:node /data
ENV DATA_DIR=/data HOST=0.0.0.0 PORT=8080
EXPOSE 8080

# Starts as root only to give a freshly mounted (root-owned) volume at /data to
# the node user, then runs every command as node (scripts/docker-entrypoint.sh).
ENTRYPOINT ["/app/scripts/docker-entrypoint.sh"]
# The API; fly.toml's process groups override this per group.
CMD ["node", "src/bin/api.ts"]
