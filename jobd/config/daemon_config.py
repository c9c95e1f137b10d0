"""The daemon config (``jobd.toml``) read into ``DaemonConfig``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobd._exceptions import ConfigError
from jobd.config.celery import parse_celery
from jobd.config.http import missing_web_modules, parse_listen, token_problem
from jobd.config.keys import (
    CELERY_KEYS,
    DAEMON_KEYS,
    DEFAULT_CONFIG_PATH,
    HTTP_KEYS,
    JOB_ID,
    POOL_KEYS,
    SIZE_PATTERN,
)
from jobd.config.messages import Report, describe, hint, resolved, show
from jobd.config.model import (
    DaemonConfig,
    HttpConfig,
    PoolConfig,
)
from jobd.config.reading import Table, read_toml
from jobd.triggers.timezones import machine_timezone, resolve_timezone

# --- the daemon config ---------------------------------------------------------------------


def default_config_path() -> Path:
    """``$JOBD_CONFIG``, else ``/etc/jobd/jobd.toml``."""
    env = os.environ.get("JOBD_CONFIG")
    return Path(env) if env else DEFAULT_CONFIG_PATH


def _size(value: int | str) -> int:
    """Bytes in ``value``: an integer or a string like ``"10MiB"``; raise ValueError."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(SIZE_PATTERN, value)
    if m is None:
        raise ValueError(
            f"{show(value)} is not a size; write bytes as an integer or a "
            'number with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "10MiB"'
        )
    units = {
        "B": 1,
        "KB": 10**3,
        "MB": 10**6,
        "GB": 10**9,
        "KiB": 2**10,
        "MiB": 2**20,
        "GiB": 2**30,
    }
    return int(m.group(1)) * units[m.group(2)]


def _mode(value: int | str) -> int:
    """A socket mode: ``"0660"``, ``"660"``, ``"0o660"`` or the integer ``0o660``."""
    if isinstance(value, str):
        m = re.fullmatch(r"(?:0o|0)?([0-7]{3})", value.strip())
        if m is None:
            raise ValueError(f'{show(value)} is not a file mode; write octal digits, e.g. "0660"')
        return int(m.group(1), 8)
    if not 0 <= value <= 0o777:
        raise ValueError(
            f"{value} is not a file mode; write a string of octal digits, "
            'e.g. "0660" (or the TOML integer 0o660)'
        )
    return value


def under(base: Path, text: str) -> Path:
    """``text`` as a path, relative ones resolved against ``base``, normalised."""
    if text.startswith("~"):
        text = os.path.expanduser(text)
    return Path(os.path.normpath(os.path.join(base, text)))


def load_config(path: Path) -> DaemonConfig:
    """Read and validate the daemon config at ``path``; raise ``ConfigError`` with every
    problem. Relative paths resolve against the config file's directory (symlinks resolved)."""
    report = Report(path)
    doc = read_toml(path, report, "config file")
    if doc is None:
        raise ConfigError(report.problems)
    base = resolved(path).parent
    for name, value in doc.items():
        if name not in ("daemon", "pools", "celery", "http"):
            report.add(
                "unknown table" + hint(name, ("daemon", "pools", "celery", "http")),
                at=(name,),
                key=name,
            )
        elif not isinstance(value, dict):
            report.add(f"expected a table, got {describe(value)}", at=(name,), key=name)
    section = doc.get("daemon", {})
    t = Table(
        report,
        ("daemon",),
        None,
        DAEMON_KEYS,
        section if isinstance(section, dict) else {},
        prefix="daemon.",
    )

    timezone = t.get("timezone")
    if timezone is None:
        timezone = machine_timezone()
    else:
        try:
            resolve_timezone(timezone)
        except ValueError as e:
            t.problem("timezone", str(e))
    kwargs: dict[str, Any] = {}
    for name, convert in (("socket_mode", _mode), ("log_max_bytes", _size)):
        if name in t.values:
            try:
                kwargs[name] = convert(t.values[name])
            except ValueError as e:
                t.problem(name, str(e))
    if kwargs.get("log_max_bytes", 1) < 1:
        t.problem("log_max_bytes", "must be at least 1 byte")
    grace = t.duration("shutdown_grace")
    days = t.duration("retention_days", positive=True)

    pools: dict[str, PoolConfig] = {}
    raw_pools = doc.get("pools", {})
    for name, value in raw_pools.items() if isinstance(raw_pools, dict) else ():
        where = ("pools", name)
        if not JOB_ID.fullmatch(name):
            report.add(
                f"{show(name)} is not a valid pool name (letters, digits, '_', '.', "
                "'-'; at most 64)",
                at=where,
                key=f"pools.{name}",
            )
            continue
        if not isinstance(value, dict):
            report.add(f"expected a table, got {describe(value)}", at=where, key=f"pools.{name}")
            continue
        p = Table(report, where, None, POOL_KEYS, value, prefix=f"pools.{name}.")
        if "max_parallel" not in value:
            p.problem(None, "missing key max_parallel")
        elif p.ok:
            pools[name] = PoolConfig(name=name, max_parallel=p.values["max_parallel"])

    celery = None
    if isinstance(doc.get("celery"), dict):
        c = Table(report, ("celery",), None, CELERY_KEYS, doc["celery"], prefix="celery.")
        celery = parse_celery(
            c.values,
            duration=lambda k: c.duration(k, positive=True),
            path_of=lambda text: under(base, text),
            problem=lambda k, m: c.problem(k, m),
        )
    raw_http = doc.get("http")
    http = _http(report, raw_http, base) if isinstance(raw_http, dict) else None

    if report.problems:
        raise ConfigError(sorted(report.problems, key=lambda p: p.line or 0))
    return DaemonConfig(
        path=path.absolute(),
        jobs_dir=under(base, t.get("jobs_dir", "jobs.d")),
        state_dir=under(base, t.get("state_dir", "/var/lib/jobd")),
        socket=under(base, t.get("socket", "/run/jobd/jobd.sock")),
        max_parallel=t.get("max_parallel", 8),
        shutdown_grace=30.0 if grace is None else grace,
        timezone=timezone,
        pools=pools,
        socket_group=t.get("socket_group"),
        retention_runs=t.get("retention_runs", 1000),
        retention_days=30.0 if days is None else days / 86400.0,
        docker_host=t.get("docker_host"),
        docker_network=t.get("docker_network"),
        celery=celery,
        http=http,
        **kwargs,
    )


def _http(report: Report, raw: Mapping[str, Any], base: Path) -> HttpConfig | None:
    """``[http]`` (docs/dashboard.md): an address, and a token beyond loopback."""
    t = Table(report, ("http",), None, HTTP_KEYS, raw, prefix="http.")
    if "listen" not in raw:
        t.problem(None, 'missing key listen (e.g. listen = "127.0.0.1:8750")')
        return None
    if not t.ok:
        return None
    try:
        host, port, sock, loopback = parse_listen(t.values["listen"])
    except ValueError as e:
        t.problem("listen", str(e))
        return None
    if missing := missing_web_modules():
        t.problem(
            None,
            f"the dashboard needs jobd's web extra ({', '.join(missing)} not "
            "installed): pip install 'jobd[web]', or remove [http]",
        )
    token_file = under(base, t.values["token_file"]) if "token_file" in t.values else None
    if token_file is None and not loopback:
        t.problem(
            "listen",
            f"{show(t.values['listen'])} is reachable from other machines: "
            "set http.token_file to a file holding a token (docs/dashboard.md), or "
            'listen on loopback ("127.0.0.1:8750")',
        )
    elif token_file is not None and (problem := token_problem(token_file)) is not None:
        t.problem("token_file", problem)
    return (
        HttpConfig(
            listen=t.values["listen"],
            host=host,
            port=port,
            path=under(base, sock) if sock is not None else None,
            token_file=token_file,
            loopback=loopback,
        )
        if t.ok
        else None
    )
