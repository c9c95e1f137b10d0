"""Fixtures of the config tests: a daemon config and a jobs_dir in a temporary directory,
with the working directory there so messages name files as ``jobs.d/x.toml``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from jobd.config.loader import load_config
from jobd.config.model import DaemonConfig

CONFIG_TEXT = """\
[daemon]
jobs_dir = "jobs.d"
state_dir = "var"
socket = "var/jobd.sock"
timezone = "UTC"

[pools.db]
max_parallel = 1
"""

Files = Mapping[str, str | bytes]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding ``jobd.toml`` and an empty ``jobs.d``, made the working dir."""
    (tmp_path / "jobd.toml").write_text(CONFIG_TEXT)
    (tmp_path / "jobs.d").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def config(workdir: Path) -> DaemonConfig:
    return load_config(workdir / "jobd.toml")


@pytest.fixture
def write_jobs(workdir: Path) -> Callable[[Files], list[Path]]:
    """Write job files into jobs.d: ``{"a.toml": "text"}``; returns their paths."""

    def write(files: Files) -> list[Path]:
        paths = []
        for name, content in files.items():
            path = workdir / "jobs.d" / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
            paths.append(path)
        return paths

    return write
