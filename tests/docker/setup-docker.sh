#!/usr/bin/env bash
# Make a Docker engine and the test image available for tests/docker (run as root).
#
# Starts a private dockerd on unix:///tmp/jobd-test-docker/docker.sock unless one already
# answers there, then imports the tiny image jobd-test-busybox:latest (busybox-static, no pull)
# unless it is already present. Idempotent; a second call takes well under a second.
set -euo pipefail

BASE=${JOBD_TEST_DOCKER_DIR:-/tmp/jobd-test-docker}
SOCK="$BASE/docker.sock"
HOST="unix://$SOCK"
IMAGE=jobd-test-busybox:latest
WAIT=${JOBD_TEST_DOCKER_WAIT:-60}

log() { echo "setup-docker: $*" >&2; }

# Debian's docker.io installs its client under /usr/bin; another docker client on PATH is fine too.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    log "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q docker.io >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q docker.io >/dev/null; }
fi

docker_() { docker -H "$HOST" "$@"; }

mkdir -p "$BASE"
if ! docker_ info >/dev/null 2>&1; then
    # a dead daemon's pidfile or socket would make the new one refuse to start
    if [[ -f "$BASE/docker.pid" ]] \
            && [[ $(cat "/proc/$(cat "$BASE/docker.pid")/comm" 2>/dev/null) == dockerd ]]; then
        log "a dockerd (pid $(cat "$BASE/docker.pid")) is starting; waiting for it"
    else
        rm -f "$BASE/docker.pid" "$SOCK"
        log "starting dockerd on $HOST (log: $BASE/dockerd.log)"
        # setsid + nohup: the daemon outlives this script and the test session that called it
        setsid nohup dockerd --host "$HOST" --data-root "$BASE/root" --exec-root "$BASE/exec" \
            --pidfile "$BASE/docker.pid" --storage-driver vfs --iptables=false --ip-masq=false \
            --bridge=none >"$BASE/dockerd.log" 2>&1 </dev/null &
    fi
    for ((i = 0; i < WAIT * 4; i++)); do
        docker_ info >/dev/null 2>&1 && break
        sleep 0.25
    done
    if ! docker_ info >/dev/null 2>&1; then
        log "dockerd did not answer on $HOST within ${WAIT}s; its log:"
        tail -n 40 "$BASE/dockerd.log" >&2 || true
        exit 1
    fi
fi

if ! docker_ image inspect "$IMAGE" >/dev/null 2>&1; then
    # Debian's busybox-static: one static binary at /bin/busybox, needs nothing else in the image
    BUSYBOX=/bin/busybox
    if ! dpkg -s busybox-static >/dev/null 2>&1 || [[ ! -x $BUSYBOX ]]; then
        log "installing busybox-static"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q busybox-static >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q busybox-static >/dev/null; }
    fi
    ROOTFS=$(mktemp -d "$BASE/rootfs.XXXXXX")
    trap 'rm -rf "$ROOTFS"' EXIT
    mkdir -p "$ROOTFS/bin" "$ROOTFS/tmp" "$ROOTFS/etc"
    cp "$BUSYBOX" "$ROOTFS/bin/busybox"
    for tool in $("$BUSYBOX" --list); do
        [[ $tool == busybox ]] || ln -s busybox "$ROOTFS/bin/$tool"
    done
    log "importing $IMAGE"
    tar -C "$ROOTFS" -c . | docker_ import -c 'ENV PATH=/bin' - "$IMAGE" >/dev/null
fi
log "ready: $HOST with $IMAGE"
