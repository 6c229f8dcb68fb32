#!/usr/bin/env bash
# Start a throwaway Redis server for mlrepro's stream tests, the same one CI uses.
#
#   eval "$(.ci/start-redis.sh)"          start it; exports MLREPRO_TEST_REDIS_URL (and
#                                         MLREPRO_REDIS_DIR) into your shell
#   .ci/start-redis.sh [DIR]              start it in DIR (default: a new /tmp/mlrepro-redis.*)
#   .ci/start-redis.sh --stop [DIR]       stop it and delete DIR (default: $MLREPRO_REDIS_DIR)
#
# The server listens on 127.0.0.1:${MLREPRO_REDIS_PORT:-63790} only, keeps nothing on disk
# (no RDB snapshots, no AOF) and runs in the background with its pid and log in DIR.
# Only the export lines go to stdout; progress and errors go to stderr.
set -euo pipefail

PORT="${MLREPRO_REDIS_PORT:-63790}"
MARKER=.mlrepro-test-redis # marks a DIR this script created, so --stop may delete it

log() { echo "start-redis: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

if [[ ${1:-} == --stop ]]; then
    dir=${2:-${MLREPRO_REDIS_DIR:-}}
    [[ -n $dir ]] || die "--stop needs the server's folder (or MLREPRO_REDIS_DIR set)"
    [[ -d $dir ]] || exit 0
    if [[ -z $(ls -A -- "$dir") ]]; then # made for a server that never started
        rmdir -- "$dir"
        exit 0
    fi
    [[ -e $dir/$MARKER ]] || die "$dir was not made by this script; not touching it"
    if [[ -f $dir/redis.pid ]]; then
        pid=$(cat "$dir/redis.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    rm -rf -- "$dir"
    log "stopped and removed $dir"
    exit 0
fi

command -v redis-server >/dev/null 2>&1 ||
    die "redis-server not found; install it with: apt-get install -y redis-server"

if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "127.0.0.1:$PORT is already in use. Stop the earlier server with" \
        "'.ci/start-redis.sh --stop DIR', or pick another port with MLREPRO_REDIS_PORT"
fi

if [[ -n ${1:-} ]]; then
    dir=$1
    mkdir -p -- "$dir"
    [[ -z $(ls -A -- "$dir") ]] || die "$dir is not empty"
else
    dir=$(mktemp -d /tmp/mlrepro-redis.XXXXXX)
fi
dir=$(cd -- "$dir" && pwd)
touch "$dir/$MARKER"

redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no \
    --daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2 ||
    die "redis-server did not start (log: $dir/redis.log)"

for _ in $(seq 100); do
    if [[ $(redis-cli -h 127.0.0.1 -p "$PORT" ping 2>/dev/null) == PONG ]]; then
        log "Redis $(redis-server --version | awk '{print $3}') ready on 127.0.0.1:$PORT;" \
            "stop it with: .ci/start-redis.sh --stop $dir"
        echo "export MLREPRO_TEST_REDIS_URL=redis://127.0.0.1:$PORT/0"
        echo "export MLREPRO_REDIS_DIR=$dir"
        exit 0
    fi
    sleep 0.1
done
tail -n 20 "$dir/redis.log" >&2 || true
die "Redis did not answer PING on 127.0.0.1:$PORT"
