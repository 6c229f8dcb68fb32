#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for mlrepro's tests, the same one CI uses.
#
#   eval "$(.ci/start-postgres.sh)"          start it; exports MLREPRO_TEST_PG_URL (and
#                                            MLREPRO_PG_DIR) into your shell
#   .ci/start-postgres.sh [DIR]              start it in DIR (default: a new /tmp/mlrepro-pg.*)
#                                            and print the export lines
#   .ci/start-postgres.sh --stop [DIR]       stop it and delete DIR (default: $MLREPRO_PG_DIR)
#
# The server: a fresh cluster in DIR/data (owned by the `postgres` OS user when run as root),
# listening on 127.0.0.1:${MLREPRO_PG_PORT:-54329} and on a unix socket in DIR, with a
# database `mlrepro_test` owned by the role `mlrepro` (password `ci-pg-secret-7f3a`, scram-sha-256 over
# TCP). Durability is switched off (fsync, full_page_writes): it is for tests only.
# Only the export lines go to stdout; progress and errors go to stderr.
set -euo pipefail

PORT="${MLREPRO_PG_PORT:-54329}"
DB=mlrepro_test
ROLE=mlrepro
PASSWORD=ci-pg-secret-7f3a
MARKER=.mlrepro-test-postgres # marks a DIR this script created, so --stop may delete it

log() { echo "start-postgres: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# The PostgreSQL server binaries: Debian keeps them in /usr/lib/postgresql/<version>/bin,
# off PATH. Prefer the newest version there, then whatever pg_ctl is on PATH.
find_bindir() {
    local d
    while read -r d; do
        if [[ -x $d/pg_ctl && -x $d/initdb && -x $d/postgres && -x $d/psql ]]; then
            echo "$d"
            return 0
        fi
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r)
    if command -v pg_ctl >/dev/null 2>&1; then
        d=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
        if [[ -x $d/initdb && -x $d/postgres && -x $d/psql ]]; then
            echo "$d"
            return 0
        fi
    fi
    return 1
}

BIN=$(find_bindir) ||
    die "no PostgreSQL server binaries found (looked in /usr/lib/postgresql/*/bin and PATH);" \
        "install them with: apt-get install -y postgresql"

# PostgreSQL refuses to run as root: as root, run the server tools as the `postgres` user.
if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 ||
        die "running as root but there is no 'postgres' OS user (apt-get install postgresql makes it)"
    as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
    as_pg() { "$@"; }
fi

stop_server() {
    local dir=$1
    if [[ -f $dir/data/postmaster.pid ]]; then
        as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >&2 ||
            log "warning: pg_ctl stop failed; see $dir/postgres.log"
    fi
}

if [[ ${1:-} == --stop ]]; then
    dir=${2:-${MLREPRO_PG_DIR:-}}
    [[ -n $dir ]] || die "--stop needs the server's folder (or MLREPRO_PG_DIR set)"
    [[ -d $dir ]] || exit 0
    [[ -e $dir/$MARKER ]] || die "$dir was not made by this script; not touching it"
    stop_server "$dir"
    rm -rf -- "$dir"
    log "stopped and removed $dir"
    exit 0
fi

# Refuse early if the port is taken (most often: a server from an earlier run still going).
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    die "127.0.0.1:$PORT is already in use. Stop the earlier server with" \
        "'.ci/start-postgres.sh --stop DIR', or pick another port with MLREPRO_PG_PORT"
fi

if [[ -n ${1:-} ]]; then
    dir=$1
    mkdir -p -- "$dir"
    [[ -z $(ls -A -- "$dir") ]] || die "$dir is not empty"
else
    # /tmp rather than $TMPDIR: the postgres user must be able to reach the folder.
    dir=$(mktemp -d /tmp/mlrepro-pg.XXXXXX)
fi
dir=$(cd -- "$dir" && pwd)
[[ $dir != *[[:space:]\']* ]] || die "the folder path must not contain spaces or quotes: $dir"
touch "$dir/$MARKER"
if [[ $EUID -eq 0 ]]; then
    chown postgres: "$dir"
fi
chmod 700 "$dir"

started=0
ok=0
on_exit() {
    if [[ $ok != 1 && $started == 1 ]]; then
        log "start failed; stopping the server (log: $dir/postgres.log)"
        stop_server "$dir"
    fi
}
trap on_exit EXIT

log "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') from $BIN, cluster in $dir/data"
if ! as_pg "$BIN/initdb" -D "$dir/data" -U postgres -E UTF8 --no-locale --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    die "initdb failed"
fi

started=1
if ! as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $PORT -k '$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >&2; then
    tail -n 30 "$dir/postgres.log" >&2 || true
    die "the server did not start"
fi

psql_admin() {
    as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$PORT" -U postgres -d postgres "$@"
}
psql_admin -c "CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD'" >&2
psql_admin -c "CREATE DATABASE $DB OWNER $ROLE" >&2

# Prove the URL the tests get works: password auth over TCP as the test role.
PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=10 "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -At \
    -h 127.0.0.1 -p "$PORT" -U "$ROLE" -d "$DB" -c "SELECT 1" >/dev/null ||
    die "cannot log in as $ROLE over TCP"

ok=1
log "ready on 127.0.0.1:$PORT; stop it with: .ci/start-postgres.sh --stop $dir"
echo "export MLREPRO_TEST_PG_URL=postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
echo "export MLREPRO_PG_DIR=$dir"
