"""A reload applies what it can and names, one warning each, the settings that need a restart."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jobd.config.loader import load_config
from jobd.config.model import RELOADABLE, DaemonConfig, HttpConfig, restart_needed

from .conftest import running, write_config


def _config(**kw: object) -> DaemonConfig:
    base: dict[str, object] = dict(
        path=None, jobs_dir=Path("/j"), state_dir=Path("/s"), socket=Path("/s/sock")
    )
    base.update(kw)
    return DaemonConfig(**base)  # type: ignore[arg-type]


def test_restart_needed_names_only_what_a_reload_cannot_apply() -> None:
    old = _config()
    new = _config(
        path=Path("/etc/jobd/jobd.toml"),
        max_parallel=2,
        socket_mode=0o666,
        socket_group="ops",
        docker_host="unix:///d.sock",
        docker_network="none",
        state_dir=Path("/t"),
        retention_days=1.0,
    )
    assert restart_needed(old, new) == [
        "daemon.state_dir",
        "daemon.socket_group",
        "daemon.socket_mode",
        "daemon.docker_host",
        "daemon.docker_network",
    ]
    assert restart_needed(old, old) == []
    dashboard = HttpConfig(
        listen="127.0.0.1:8750",
        host="127.0.0.1",
        port=8750,
        path=None,
        token_file=None,
        loopback=True,
    )
    assert restart_needed(old, _config(http=dashboard)) == ["http"]


def test_every_setting_is_either_reloadable_or_needs_a_restart() -> None:
    fields = set(DaemonConfig.__dataclass_fields__) - {"path"}
    assert set(RELOADABLE) <= fields
    # the rest need a restart: a setting added later is reported, never silently ignored
    assert {
        "jobs_dir",
        "state_dir",
        "socket",
        "socket_group",
        "socket_mode",
        "docker_host",
        "docker_network",
    } <= fields - set(RELOADABLE)


async def test_reload_warns_for_each_setting_that_needs_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_config(tmp_path, '[jobs.a]\ncommand = "true"\n')
    config = load_config(path)
    async with running(config) as d:
        path.write_text(
            path.read_text() + 'socket_mode = "0666"\ndocker_network = "none"\nmax_parallel = 3\n'
        )
        with caplog.at_level(logging.WARNING, logger="jobd"):
            await d.reload()
        assert d.config.max_parallel == 3  # applied
        assert d.config.socket_mode == 0o660  # not applied: the socket exists
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "config: daemon.socket_mode changed; it takes effect only when jobd is restarted "
        "(systemctl restart jobd)",
        "config: daemon.docker_network changed; it takes effect only when jobd is restarted "
        "(systemctl restart jobd)",
    ]
