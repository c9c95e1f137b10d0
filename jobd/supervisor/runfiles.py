"""The files jobd makes for a run besides its log: ``JOBD_OUTPUT`` and
``JOBD_CHANGED_PATHS_FILE``, with the modes of docs/security.md whoever writes first.

Logs are 0640 in directories 0750 (only jobd writes them). A run's output file is made empty,
0640, before each attempt and handed to the run's user, so the job writes into a file that is
already private; its directory is 0711, so a job running as another user reaches its own file
but nobody can list the others."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping, Sequence
from pathlib import Path

from jobd._exceptions import StorageError
from jobd.config.model import DaemonConfig
from jobd.journal.abc import RunRecord
from jobd.journal.sqlite import os_fault

FILE_MODE = 0o640
LOG_DIR_MODE = 0o750
OUTPUTS_DIR_MODE = 0o711
MAX_OUTPUTS_BYTES = 1 << 20
"""Bytes of a run's ``JOBD_OUTPUT`` file that are read; the rest is ignored."""
MAX_PATHS_ENV = 64 * 1024
"""Bytes of ``JOBD_CHANGED_PATHS`` at most: the kernel refuses to start a program with one
environment string over 128 KiB. Beyond it the variable holds the first paths that fit and
``JOBD_CHANGED_PATHS_TRUNCATED=1``; the file always holds them all."""


def outputs_dir(config: DaemonConfig) -> Path:
    return config.state_dir / "outputs"


def output_path(config: DaemonConfig, run: RunRecord) -> Path:
    return outputs_dir(config) / f"{run.run_id}.out"


def paths_file(config: DaemonConfig, run: RunRecord) -> Path:
    return outputs_dir(config) / f"{run.run_id}.paths"


def make_state_dirs(config: DaemonConfig) -> None:
    """``make_dirs`` at start: a failure there is the storage's (exit 4), named."""
    try:
        make_dirs(config)
    except OSError as exc:
        why = os_fault(exc) or exc.strerror
        raise StorageError(f"state_dir: cannot prepare {exc.filename}: {why}") from exc


def make_dirs(config: DaemonConfig) -> None:
    """The state directories with their modes (existing ones are brought to them)."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    for path, mode in ((config.logs_dir, LOG_DIR_MODE), (outputs_dir(config), OUTPUTS_DIR_MODE)):
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        os.chmod(path, mode)
    with os.scandir(config.logs_dir) as entries:  # one directory a job, from older versions too
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, LOG_DIR_MODE)


def run_owner(user: str) -> tuple[int, int] | None:
    """The uid and gid of a job's ``user`` (may block on NSS: call it in a thread)."""
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, OverflowError):
        return None  # the executor says so when it starts the run
    return pw.pw_uid, pw.pw_gid


def _fs(path: str) -> bytes:
    try:
        return os.fsencode(path)
    except UnicodeEncodeError:
        return path.encode("utf-8", "replace")


def _private_file(path: Path, data: bytes, owner: tuple[int, int] | None) -> None:
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE
    )
    try:
        os.fchmod(fd, FILE_MODE)  # a file left from before keeps no other mode
        if owner is not None:
            os.fchown(fd, *owner)
        if data:
            os.write(fd, data)
    finally:
        os.close(fd)


def prepare(config: DaemonConfig, run: RunRecord, owner: tuple[int, int] | None) -> None:
    """Before an attempt: an empty output file, and the changed paths file of a watch run."""
    try:
        _private_file(output_path(config, run), b"", owner)
    except FileNotFoundError:
        make_dirs(config)
        _private_file(output_path(config, run), b"", owner)
    if run.changed_paths:
        data = b"".join(_fs(p) + b"\0" for p in run.changed_paths)
        _private_file(paths_file(config, run), data, owner)


def remove(config: DaemonConfig, run: RunRecord) -> None:
    output_path(config, run).unlink(missing_ok=True)
    if run.changed_paths:  # only a watch run has one (``prepare``)
        paths_file(config, run).unlink(missing_ok=True)


def changed_paths_env(
    config: DaemonConfig, run: RunRecord, paths: Sequence[str]
) -> Mapping[str, str]:
    """``JOBD_CHANGED_PATHS`` (one path a line; a name holding a newline is left out, as no
    line could hold it unambiguously) and ``JOBD_CHANGED_PATHS_FILE`` (every path, each
    ended by a NUL byte)."""
    if not paths:
        return {}
    env = {"JOBD_CHANGED_PATHS_FILE": str(paths_file(config, run))}
    lines: list[str] = []
    size = 0
    for p in paths:
        if "\n" in p:
            continue
        size += len(_fs(p)) + 1
        if size > MAX_PATHS_ENV:
            env["JOBD_CHANGED_PATHS_TRUNCATED"] = "1"
            break
        lines.append(p)
    env["JOBD_CHANGED_PATHS"] = "\n".join(lines)
    return env
