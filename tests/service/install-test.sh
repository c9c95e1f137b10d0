#!/usr/bin/env bash
# Install jobd as a service by the recipe of docs/systemd.md into a scratch root, run it as the
# jobd user with the unit's settings, and check the socket rules with two other users.
#
# The recipe blocks (<!-- recipe: NAME --> before a ```sh block) run as written, with the
# absolute paths moved under the scratch root; apt-get lines are left to .ci/run, git lines are
# skipped, and systemctl is played by this script (setpriv; see docs/systemd.md, How this is
# tested). Users jobd, jobd-ops and two test users are made for real and removed at the end.
# Usage: tests/service/install-test.sh  (as root; as anyone else it says what it cannot test)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DOC=$SRC/docs/systemd.md
MEMBER=jobd-test-member  # in jobd-ops: may read and change
OTHER=jobd-test-other    # in no group of jobd's: may not connect, or only read with 0666

say() { echo "install-test: $*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
    say "NOT TESTED (not root): the service install recipe, the jobd user, the socket rules" \
        "with other uids. Run as root: sudo $0"
    exit 0
fi
for tool in setpriv useradd groupadd gpasswd userdel groupdel sqlite3 /usr/bin/python3; do
    command -v "$tool" >/dev/null || fail "$tool is missing (.ci/run installs it)"
done
for name in jobd jobd-ops $MEMBER $OTHER; do
    if getent passwd "$name" >/dev/null || getent group "$name" >/dev/null; then
        say "NOT TESTED: a user or group '$name' exists already; this test makes and removes" \
            "its own and leaves a real installation alone"
        exit 0
    fi
done

say "the unit is played with setpriv: User=, Group= and supplementary groups, Environment=," \
    "UMask=, NoNewPrivileges=, CapabilityBoundingSet=, StateDirectory= and RuntimeDirectory=;" \
    "NOT TESTED here: the namespace sandbox (ProtectSystem=, PrivateTmp=, ...), the syscall" \
    "filter and Type=notify, which need systemd as PID 1 (systemd-analyze checks the unit)"

exec 9>/tmp/jobd-install-test.lock
flock -w 600 9 || fail "another install test holds /tmp/jobd-install-test.lock"

R=$(mktemp -d /tmp/jobd-service.XXXXXX)
chmod 0755 "$R"
install -d -m 0755 "$R/usr/local/bin" "$R/etc/systemd/system" "$R/var/backups"  # as on Debian
ERR=$R/jobd.stderr  # the daemon's stderr: what journald would get
PID=
cleanup() {
    local rc=$?
    set +e  # clean up all that can be, whatever fails
    [[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    local u g p
    for u in $MEMBER $OTHER jobd; do  # users this script made (none existed before it)
        getent passwd "$u" >/dev/null || continue
        for p in $(pgrep -u "$u"); do kill -KILL "$p" 2>/dev/null || true; done  # runs left
        for _ in $(seq 50); do pgrep -u "$u" >/dev/null || break; sleep 0.1; done
        userdel "$u" || say "could not remove user $u: remove it by hand (userdel $u)"
    done
    for g in jobd-ops jobd $MEMBER $OTHER; do
        if getent group "$g" >/dev/null; then
            groupdel "$g" || say "could not remove group $g: remove it by hand (groupdel $g)"
        fi
    done
    [[ $rc -eq 0 ]] || say "FAILED (exit $rc)"
    if [[ $rc -ne 0 && -f $ERR ]]; then say "the daemon's stderr:"; tail -n 40 "$ERR" >&2; fi
    rm -rf "$R"
    exit "$rc"
}
trap cleanup EXIT

# --- the recipe, from the page ------------------------------------------------------------

recipe() {  # the commands of one recipe block, paths moved under $R
    awk -v want="<!-- recipe: $1 -->" '
        $0 == want { found = 1; next }
        found && /^```sh/ { inside = 1; next }
        inside && /^```/ { exit }
        inside { print }' "$DOC" \
    | grep -v -E '^(apt-get|git) ' \
    | sed -E "s#(^|[ =\"'])/(opt/jobd|etc/jobd|etc/systemd/system|usr/local/bin|var/lib/jobd|var/backups|run/jobd)#\1$R/\2#g" \
    | sed -E "s#(^| )systemd/#\1$R/src/systemd/#g"
}
run_recipe() {
    local text
    text=$(recipe "$1")
    [[ -n $text ]] || fail "no recipe block '$1' in $DOC"
    say "recipe $1:"; sed 's/^/    /' <<<"$text" >&2
    cd "$SRC"
    eval "$text"  # in this shell: systemctl below keeps the daemon's pid
}

# --- systemctl, played: the unit's settings through setpriv -------------------------------

UNIT=$R/etc/systemd/system/jobd.service
unit() {  # a directive's values in order, the unit's then its drop-ins'; an empty one resets
    local f
    { cat "$UNIT"; for f in "$UNIT".d/*.conf; do if [[ -e $f ]]; then cat "$f"; fi; done; } \
        | sed -n "s/^$1=//p" \
        | awk '{ if ($0 == "") n = 0; else v[n++] = $0 } END { for (i = 0; i < n; i++) print v[i] }'
}
caps() {  # CapabilityBoundingSet= as setpriv's --bounding-set
    local out=-all c
    for c in $(unit CapabilityBoundingSet); do c=${c#CAP_}; out+=",+${c,,}"; done
    echo "$out"
}

start() {
    local user group sd rd env=() line who=()
    user=$(unit User | tail -n 1); group=$(unit Group | tail -n 1)
    [[ -n $user ]] && who=(--reuid="$user" --regid="$group" --init-groups)
    user=${user:-root}; group=${group:-root}
    sd=$(unit StateDirectory); rd=$(unit RuntimeDirectory)
    install -d -m 0755 "$R/var/lib" "$R/run"
    install -d -o "$user" -g "$group" -m "$(unit StateDirectoryMode)" "$R/var/lib/$sd"
    install -d -o "$user" -g "$group" -m "$(unit RuntimeDirectoryMode)" "$R/run/$rd"
    while read -r line; do [[ -n $line ]] && env+=("$line"); done < <(unit Environment)
    [[ $(unit NoNewPrivileges) == yes ]] || fail "the unit no longer sets NoNewPrivileges=yes"
    : >>"$ERR"
    # shellcheck disable=SC2046  # ExecStart= is split into words, as systemd does
    (
        umask "$(unit UMask)"
        exec env -i "${env[@]}" HOME="$R/var/lib/$sd" USER="$user" LOGNAME="$user" LANG=C.UTF-8 \
            JOURNAL_STREAM="$(stat -c '%d:%i' "$ERR")" \
            setpriv "${who[@]}" --no-new-privs --bounding-set="$(caps)" --inh-caps=-all \
                $(unit ExecStart)
    ) >/dev/null 2>>"$ERR" &
    PID=$!
    for _ in $(seq 200); do
        jobctl_as root status >/dev/null 2>&1 && return 0
        kill -0 "$PID" 2>/dev/null || { PID=; fail "jobd exited at start"; }
        sleep 0.1
    done
    fail "jobd did not answer within 20s"
}
stop() {
    [[ -n $PID ]] || return 0
    kill -TERM "$PID"
    local rc=0
    wait "$PID" || rc=$?
    PID=
    [[ $rc -eq 0 ]] || fail "jobd exited $rc on SIGTERM"
}
play_systemctl() {
systemctl() {
    case "$*" in
        daemon-reload) ;;
        "enable --now jobd"|"start jobd") start ;;
        "disable --now jobd"|"stop jobd") stop ;;
        "restart jobd") stop; start ;;
        "reload jobd") kill -HUP "$PID" ;;
        *) fail "systemctl $* is not played by this script" ;;
    esac
}
}
play_systemctl

SOCK=$R/run/jobd/jobd.sock
jobctl_as() {  # jobctl as a user, with the groups the user database gives it
    local who=$1; shift
    if [[ $who == root ]]; then
        JOBD_SOCKET=$SOCK "$R/opt/jobd/bin/jobctl" "$@"
    else
        env -i PATH=/usr/bin:/bin JOBD_SOCKET="$SOCK" \
            setpriv --reuid="$who" --regid="$who" --init-groups "$R/opt/jobd/bin/jobctl" "$@"
    fi
}
expect() {  # expect EXIT_CODE USER jobctl-args...: the exit code, with its output on failure
    local want=$1 who=$2 rc=0 out; shift 2
    out=$(jobctl_as "$who" "$@" 2>&1) || rc=$?
    [[ $rc -eq $want ]] || fail "jobctl $* as $who exited $rc, not $want: $out"
    printf '%s\n' "$out"
}
until_logged() {  # wait up to 10s for a line of the daemon's stderr matching a regex
    for _ in $(seq 100); do grep -qE -- "$1" "$ERR" && return 0; sleep 0.1; done
    fail "no line matching '$1' in the daemon's stderr"
}

# --- install ------------------------------------------------------------------------------

export JOBD_CONFIG=$R/etc/jobd/jobd.toml  # `jobd check` of the recipe reads the moved config
export PATH=$R/usr/local/bin:$PATH          # where the recipe links jobd and jobctl
# The checkout's config and unit name the real paths: the recipe installs copies with them moved.
install -d "$R/src"
cp -r "$SRC/systemd" "$R/src/"
sed -i -E "s#(^|[ =\"'])/(opt/jobd|etc/jobd|var/lib/jobd|run/jobd)#\1$R/\2#g" "$R"/src/systemd/*

# Start with jobd outside jobd-ops: the daemon must start anyway and say what to do.
say "install, with jobd not yet in jobd-ops"
systemctl() { [[ $* == "enable --now jobd" || $* == daemon-reload ]] || fail "systemctl $*"; }
run_recipe install  # started below, once the installed config and unit name the scratch root
unset -f systemctl; play_systemctl
[[ -x $R/opt/jobd/bin/jobd && -L $R/usr/local/bin/jobctl ]] || fail "jobd/jobctl not installed"
if "$R/opt/jobd/bin/python" -m pip list 2>/dev/null | grep -iE '^(aiohttp|aiodocker) '; then
    fail "a plain install brought the aiohttp stack"
fi
if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify "$UNIT" 2>&1) || fail "systemd-analyze verify: $out"
    [[ -z $out ]] || fail "systemd-analyze verify: $out"
else
    say "NOT TESTED: systemd-analyze verify of the installed unit (systemd-analyze missing)"
fi
cat >"$R/etc/jobd/jobs.d/service.toml" <<'EOF'
[jobs.whoami]
command = "id -un; id -Gn; umask"

[jobs.broken]
command = "echo about to fail; exit 3"
EOF
"$R/opt/jobd/bin/jobd" check >/dev/null || fail "jobd check of the installed config"

gpasswd -d jobd jobd-ops >/dev/null
start
until_logged "^<3>jobd.control: control socket $SOCK: user 'jobd' is not a member of socket_group 'jobd-ops'.*usermod -a -G jobd-ops jobd"
[[ $(stat -c '%U:%G %a' "$SOCK") == "jobd:jobd 660" ]] || fail "socket: $(stat -c '%U:%G %a' "$SOCK")"
stop

say "socket rules: jobd-ops 0660"
usermod -a -G jobd-ops jobd
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group --groups jobd-ops $MEMBER
useradd --system --no-create-home --shell /usr/sbin/nologin --user-group $OTHER
start
[[ $(stat -c '%U:%G %a' "$SOCK") == "jobd:jobd-ops 660" ]] || fail "socket: $(stat -c '%U:%G %a' "$SOCK")"
expect 0 $MEMBER status >/dev/null
out=$(expect 0 $MEMBER run whoami --wait)
grep -qx jobd <<<"$out" || fail "the job did not run as jobd: $out"
grep -qx 0027 <<<"$out" || fail "the job's umask is not the unit's 0027: $out"
expect 0 $MEMBER pause whoami >/dev/null
expect 0 $MEMBER resume whoami >/dev/null
out=$(expect 3 $OTHER status)
grep -q "Permission denied" <<<"$out" || fail "an outsider's refusal does not say why: $out"

say "a failing run under journald"
expect 1 root run broken --wait >/dev/null
until_logged "^<3>jobd.runner: run [0-9]+ of job 'broken' failed, trigger manual, exit code 3, in [0-9.]+s: exit code 3; log $R/var/lib/jobd/logs/broken/[0-9]+.log$"
until_logged "^<6>jobd.runner: run [0-9]+ of job 'whoami' succeeded"
if grep -vE '^<[0-7]>' "$ERR" | grep -q .; then fail "lines without a priority: $(grep -vE '^<[0-7]>' "$ERR")"; fi
if grep -qE '[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}' "$ERR"; then fail "time stamps under journald"; fi
if grep -vE '^<[0-7]>jobd' "$ERR" | grep -q .; then fail "third-party lines: $(grep -vE '^<[0-7]>jobd' "$ERR")"; fi
for f in "$R/var/lib/jobd/jobd.db" "$R"/var/lib/jobd/logs/broken/*.log; do
    [[ $(stat -c '%U %a' "$f") =~ ^jobd\ [0-7][0-7]0$ ]] \
        || fail "$f: $(stat -c '%U %a' "$f"), readable by others (the unit's UMask=0027)"
done

say "socket_mode 0666: a reload says a restart is needed; after it, others may read only"
sed -i 's/^socket_mode = "0660"/socket_mode = "0666"/' "$JOBD_CONFIG"
systemctl reload jobd
until_logged "^<4>jobd: config: daemon.socket_mode changed; it takes effect only when jobd is restarted"
expect 3 $OTHER status >/dev/null
systemctl restart jobd
expect 0 $OTHER status >/dev/null
out=$(expect 2 $OTHER run whoami)
grep -q "may not run" <<<"$out" || fail "the refusal does not say why: $out"
expect 0 $MEMBER run whoami --wait >/dev/null

say "upgrade, backup, restore"
count_runs() {
    expect 0 root --json runs --limit 1000 | "$R/opt/jobd/bin/python" -c \
        'import json, sys; r = json.load(sys.stdin); print(len(r["runs"] if isinstance(r, dict) else r))'
}
runs_before=$(count_runs)
run_recipe upgrade
run_recipe backup
expect 0 root run whoami --wait >/dev/null  # after the backup: gone once it is restored
run_recipe restore
runs_after=$(count_runs)
[[ $runs_after -eq $runs_before ]] || fail "restored journal holds $runs_after runs, not $runs_before"

say "root mode: jobs as other users; recovery stops what their runs left"
run_recipe root-mode
[[ $(ps -o user= -p "$PID") == root ]] || fail "root mode: jobd runs as $(ps -o user= -p "$PID")"
cat >"$R/etc/jobd/jobs.d/as-member.toml" <<TOML
[jobs.as-member]
user = "$MEMBER"
command = "id -un"

[jobs.hold]
user = "$MEMBER"
command = "sleep 300 & wait"
TOML
systemctl reload jobd
until_logged "reloaded: 4 jobs"
out=$(expect 0 root run as-member --wait)
grep -qx "$MEMBER" <<<"$out" || fail "the job did not run as $MEMBER: $out"
expect 0 root run hold >/dev/null
left=
for _ in $(seq 100); do
    left=$(pgrep -u "$MEMBER" -x sleep || true)
    [[ -n $left ]] && break
    sleep 0.1
done
[[ -n $left ]] || fail "the hold job's sleep did not start"
kill -KILL "$PID"; wait "$PID" 2>/dev/null || true; PID=
kill -0 $left || fail "the sleep died with jobd: nothing left to recover"
start
until_logged "run [0-9]+: stopping [0-9]+ leftover"
for _ in $(seq 100); do kill -0 $left 2>/dev/null || break; sleep 0.1; done
if kill -0 $left 2>/dev/null; then fail "recovery left the sleep ($left) of $MEMBER running"; fi
expect 0 root cancel hold >/dev/null  # its recovery re-run

say "uninstall"
run_recipe uninstall
for name in jobd jobd-ops; do getent passwd "$name" >/dev/null && fail "user $name is left"; done
getent group jobd-ops >/dev/null && fail "group jobd-ops is left"
[[ ! -e $R/opt/jobd && ! -e $UNIT && ! -e $R/usr/local/bin/jobctl ]] || fail "files are left"
say "ok: installed, ran as jobd, socket rules held for $MEMBER and $OTHER, upgraded, restored, removed"
