#!/bin/sh
# A throwaway PostgreSQL cluster for the tests and benchmarks, from Debian's package.
#
#   scripts/postgres.sh start [--durable]   prints two lines: the cluster's folder, its URL
#   scripts/postgres.sh stop FOLDER         stops it and removes the folder
#
# The cluster lives in a fresh folder under /tmp and listens on a unix socket there only (no
# TCP port, so parallel runs on one machine never collide). initdb refuses to run as root, so
# as root the cluster belongs to a system user, strata-pg, created here when missing.
# Without --durable it runs with fsync off (tests: a crash only loses a throwaway cluster);
# with it, the server's defaults (fsync on, synchronous_commit on), as a benchmark needs.
# The postgresql package is installed (apt-get) when its binaries are missing.
set -eu

bindir() {
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

install_postgres() {
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "postgres.sh: installing postgresql (Debian)" >&2
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
}

# Run a command as the cluster's owner: ourselves, or strata-pg when we are root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u strata-pg -- "$@"
    else
        "$@"
    fi
}

start() {
    durable=0
    if [ "${1:-}" = "--durable" ]; then
        durable=1
    fi
    bin=$(bindir) || { install_postgres && bin=$(bindir); } || {
        echo "postgres.sh: no PostgreSQL binaries after installing postgresql" >&2
        exit 1
    }
    if [ "$(id -u)" -eq 0 ] && ! id strata-pg >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin strata-pg
    fi
    dir=$(mktemp -d /tmp/strata-pg.XXXXXX)
    chmod 755 "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown strata-pg "$dir"
    fi
    as_owner "$bin/initdb" -D "$dir/data" -U strata -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$dir/initdb.log" 2>&1 || {
        cat "$dir/initdb.log" >&2
        exit 1
    }
    options="-c listen_addresses='' -k $dir -c max_connections=200 -c shared_buffers=64MB"
    if [ "$durable" -eq 0 ]; then
        options="$options -c fsync=off -c full_page_writes=off"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$options" -w -t 60 \
        start >/dev/null || {
        cat "$dir/server.log" >&2
        exit 1
    }
    echo "$dir"
    echo "postgresql://strata@/postgres?host=$dir"
}

stop() {
    dir=$1
    case "$dir" in
    /tmp/strata-pg.*) ;;
    *)
        echo "postgres.sh: $dir is not a cluster this script started" >&2
        exit 2
        ;;
    esac
    bin=$(bindir)
    if [ -d "$dir/data" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

case "${1:-}" in
start)
    shift
    start "$@"
    ;;
stop)
    stop "$2"
    ;;
*)
    echo "usage: $0 start [--durable] | stop FOLDER" >&2
    exit 2
    ;;
esac
