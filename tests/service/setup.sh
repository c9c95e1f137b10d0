#!/usr/bin/env bash
# Debian packages for the service checks (run as root; .ci/run calls it): systemd-analyze
# (the unit's verify and security tests, the cron agreement tests), and what the install test
# uses: Debian's python3-venv, sqlite3 (the backup recipe), setpriv (util-linux) and
# useradd/groupadd/gpasswd (passwd). Installs only what is missing.
set -euo pipefail
need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v useradd >/dev/null 2>&1 && command -v gpasswd >/dev/null 2>&1 || need+=(passwd)
if ((${#need[@]})); then
    echo "service setup: installing ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
