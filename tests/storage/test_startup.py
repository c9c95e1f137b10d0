"""At start, a damaged journal and a failing disk are told apart: one message naming the
file and what to do, a documented exit code (3 damaged, 4 storage), never a traceback; and
``jobd journal check`` says the same without starting anything."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import jobd, write_config

JOBS = """
[jobs.tick]
every = "1h"
command = "true"
"""


def healthy_journal(state: Path, runs: int = 2000) -> Path:
    """A real journal, written by a daemon life (``jobd`` then SIGTERM is slower): a schema
    made by jobd itself, then many runs in it so that truncation cuts real pages."""
    db = state / "jobd.db"
    res = jobd(write_config(state.parent, state, JOBS), "journal", "check")
    assert res.returncode == 4, res.stderr  # no journal yet: nothing to read
    import anyio

    from jobd._enums import RunState, TriggerKind
    from jobd.journal.abc import RunRecord
    from jobd.journal.sqlite import SQLiteJournal
    from tests.supervisor.conftest import T0

    async def fill() -> None:
        async with SQLiteJournal(db) as j:
            await j.put_runs(
                [
                    RunRecord(
                        run_id=i,
                        job_id="tick",
                        trigger=TriggerKind.MANUAL,
                        state=RunState.SUCCEEDED,
                        queued_at=T0,
                        message="x" * 200,
                    )
                    for i in range(1, runs + 1)
                ]
            )

    anyio.run(fill)
    return db


def fill(path: Path) -> None:
    """Write ``path`` until the file system holding it is full, to the last byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError:
                continue
    finally:
        os.close(fd)


def one_message(res: object, exit_code: int, *needles: str) -> None:
    assert isinstance(res, __import__("subprocess").CompletedProcess)
    assert res.returncode == exit_code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("jobd: ")]
    assert len(lines) == 1, res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated"])
def test_damaged_journal_is_refused_with_one_message(tmp_path: Path, damage: str) -> None:
    state = tmp_path / "var"
    state.mkdir()
    cfg = write_config(tmp_path, state, JOBS)
    db = state / "jobd.db"
    if damage == "empty":
        db.write_bytes(b"")
        needle = "exists but is empty (0 bytes)"
    elif damage == "garbage":
        db.write_bytes(b"not a database at all\n" * 500)
        needle = "is not a usable SQLite database"
    else:
        healthy_journal(state)
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
        needle = "damaged"  # SQLite finds it malformed first, or jobd finds it truncated
    res = jobd(cfg)
    one_message(res, 3, str(db), "backup")
    assert needle in res.stderr or "empty" in res.stderr
    assert db.exists()  # never replaced by a fresh journal
    check = jobd(cfg, "journal", "check")
    assert check.returncode == 3 and str(db) in check.stderr and "Traceback" not in check.stderr


def test_journal_check_on_a_sound_journal(tmp_path: Path) -> None:
    state = tmp_path / "var"
    state.mkdir()
    healthy_journal(state, runs=5)
    res = jobd(write_config(tmp_path, state, JOBS), "journal", "check")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(
        "5 runs (0 unfinished: they re-run at the next start), 0 cursors"
    )


def test_read_only_state_dir_is_a_storage_error(tmpfs: Callable[..., Path]) -> None:
    state = tmpfs("state", ro=True)
    cfg = write_config(state.parent, state, JOBS)
    one_message(jobd(cfg), 4, "read-only")


def test_full_disk_at_start_is_a_storage_error(tmpfs: Callable[..., Path]) -> None:
    state = tmpfs("state", "1m")
    fill(state / "filler")
    res = jobd(write_config(state.parent, state, JOBS))
    one_message(res, 4, "full")


def test_old_journal_is_migrated_with_its_runs(tmp_path: Path) -> None:
    """A schema-1 journal (before ``folded_slots``) keeps its runs, which fold nothing."""
    db = tmp_path / "jobd.db"
    from jobd.journal.sqlite import MIGRATIONS

    con = sqlite3.connect(db)
    con.executescript(
        MIGRATIONS[0] + "; INSERT INTO schema_version (version) VALUES (1);"
        "INSERT INTO runs (job_id, trigger, state, attempt, queued_at, params,"
        " changed_paths, outputs) VALUES ('a', 'manual', 'succeeded', 1, 0,"
        " '{}', '[]', '{}');"
    )
    con.close()
    import anyio

    from jobd.journal.sqlite import SQLiteJournal

    async def read() -> tuple[str, ...]:
        async with SQLiteJournal(db) as j:
            [run] = await j.list_runs()
            return (*(d.isoformat() for d in run.folded_slots), run.job_id)

    assert anyio.run(read) == ("a",)
