#!/usr/bin/env bash
# The demo page served by 3 gunicorn workers sharing sessions on Redis, behind
# nginx balancing round robin: open http://127.0.0.1:8080/ (Ctrl+C stops all).
#
#   examples/cluster/run.sh
#
# Needs redis-server and nginx (Debian: apt-get install redis-server nginx-light)
# and this project with its redis extra and gunicorn[gevent] in the Python that
# PYTHON names (default python3). Ports: PORT (nginx, 8080), BACKEND_PORT
# (gunicorn, 8000), REDIS_PORT (6379, a private redis-server with nothing on disk);
# WORKERS (3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PORT="${PORT:-8080}"
BACKEND_PORT="${BACKEND_PORT:-8000}"
REDIS_PORT="${REDIS_PORT:-6379}"
WORKERS="${WORKERS:-3}"
PYTHON="${PYTHON:-python3}"
PATH="$PATH:/usr/sbin:/sbin"

run="$(mktemp -d /tmp/eio-cluster-example.XXXXXX)"
chmod 755 "$run"      # nginx's workers may run as another user
pids=()
cleanup() {
    trap - EXIT INT TERM
    kill "${pids[@]}" 2>/dev/null || true
    wait || true
    rm -rf "$run"
}
trap cleanup EXIT INT TERM

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$run" &
pids+=($!)
until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done

REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" "$PYTHON" -m gunicorn -k gevent -w "$WORKERS" \
    -b "127.0.0.1:$BACKEND_PORT" --chdir "$here" app:app &
pids+=($!)

sed -e "s/127\.0\.0\.1:8080/127.0.0.1:$PORT/" -e "s/127\.0\.0\.1:8000/127.0.0.1:$BACKEND_PORT/" \
    "$here/nginx.conf" > "$run/nginx.conf"
if [ "$(id -u)" = 0 ]; then     # as root nginx would run its workers as nobody
    sed -i "1i user $(id -un) $(id -gn);" "$run/nginx.conf"
fi
nginx -p "$run" -c "$run/nginx.conf" -e stderr &
pids+=($!)

echo "demo page: http://127.0.0.1:$PORT/ (Ctrl+C stops everything)"
wait -n
