#!/bin/sh
# The image's entrypoint. A volume mounted at DATA_DIR (fly.toml's worker
# volume at /data) is owned by root when new, and hides the image's own /data
# that was made for the `node` user, so retention could not write its
# snapshots there. Started as root, this gives DATA_DIR and SNAPSHOT_DIR to
# RUN_AS (default node) and runs the command as that user; started as anyone
# else, it runs the command as it is. exec: the command gets the signals.
set -eu
if [ "$(id -u)" = 0 ]; then
  user="${RUN_AS:-node}"
  data="${DATA_DIR:-./.data}" # empty counts as unset, as in the service's config
  snapshots="${SNAPSHOT_DIR:-$data/snapshots}"
  mkdir -p "$data" "$snapshots"
  chown "$user:" "$data" "$snapshots" # and the user's own group
  exec setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"
fi
exec "$@"
