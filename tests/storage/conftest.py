"""A real daemon process on real storage faults: a small tmpfs as ``state_dir`` (mounted
when the tests run as root with the capability, else the tests that need it are skipped)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def write_config(root: Path, state: Path, jobs: str) -> Path:
    (root / "jobs.d").mkdir(exist_ok=True)
    (root / "jobs.d" / "jobs.toml").write_text(textwrap.dedent(jobs))
    cfg = root / "jobd.toml"
    cfg.write_text(
        textwrap.dedent(f"""\
        [daemon]
        jobs_dir = "jobs.d"
        state_dir = "{state}"
        socket = "{root}/jobd.sock"
        shutdown_grace = "2s"
        timezone = "UTC"
        """)
    )
    return cfg


def jobd(cfg: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobd", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def jobctl(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    sock = cfg.parent / "jobd.sock"
    return subprocess.run(
        [sys.executable, "-m", "jobd.cli.jobctl", "--socket", str(sock), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_for(what: Callable[[], bool], within: float, why: str) -> None:
    deadline = time.monotonic() + within
    while not what():
        assert time.monotonic() < deadline, why
        time.sleep(0.05)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount a tmpfs of ``size`` (``ro`` for read-only) under tmp_path; unmounted after."""
    mounted: list[Path] = []

    def mount(name: str, size: str = "2m", *, ro: bool = False) -> Path:
        where = tmp_path / name
        where.mkdir()
        opts = f"size={size},mode=0755" + (",ro" if ro else "")
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {res.stderr.strip()}"
            )
        mounted.append(where)
        return where

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    for where in reversed(mounted):
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
