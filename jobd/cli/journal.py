"""``jobd journal check``: is the journal sound? Read-only; safe beside a running daemon.

Exit codes: 0 sound, 3 damaged (or not a jobd journal), 4 cannot be read (missing,
permission, I/O). Each problem is one line naming the file; docs/journal.md says what to do.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from jobd.journal.sqlite import SCHEMA_VERSION

OK, DAMAGED, UNREADABLE = 0, 3, 4

ADVICE = (
    'restore it from a backup (sqlite3 jobd.db ".backup copy.db" makes one), or '
    "salvage what is left with: sqlite3 {path} .recover | sqlite3 recovered.db"
)


def check_journal(path: Path) -> tuple[int, list[str]]:
    """(exit code, lines to print)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return UNREADABLE, [f"journal {path}: no such file (jobd creates it at its first start)"]
    except OSError as exc:
        return UNREADABLE, [f"journal {path}: cannot read it: {exc.strerror}"]
    if not path.is_file():
        return DAMAGED, [f"journal {path}: not a regular file"]
    if size == 0:
        return DAMAGED, [
            f"journal {path}: empty (0 bytes): it was truncated or emptied; "
            + ADVICE.format(path=path)
        ]
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return UNREADABLE, [f"journal {path}: cannot open it: {exc}"]
    try:
        return _inspect(db, path, size)
    except sqlite3.DatabaseError as exc:
        return DAMAGED, [f"journal {path}: damaged: {exc}; " + ADVICE.format(path=path)]
    finally:
        db.close()


def _inspect(db: sqlite3.Connection, path: Path, size: int) -> tuple[int, list[str]]:
    problems = [row[0] for row in db.execute("PRAGMA integrity_check(20)")]
    if problems != ["ok"]:
        return DAMAGED, [f"journal {path}: damaged: {p}" for p in problems] + [
            f"journal {path}: " + ADVICE.format(path=path)
        ]
    claimed = (
        db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    )
    wal = Path(f"{path}-wal")
    if size < claimed and (not wal.exists() or wal.stat().st_size == 0):
        return DAMAGED, [
            f"journal {path}: truncated ({size} of {claimed} bytes); " + ADVICE.format(path=path)
        ]
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "schema_version" not in tables:
        if tables - {"sqlite_sequence"}:
            return DAMAGED, [
                f"journal {path}: a SQLite database but not a jobd journal "
                f"(tables: {', '.join(sorted(tables))})"
            ]
        return OK, [f"ok: journal {path}: new, nothing journaled yet"]
    version = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
    if version > SCHEMA_VERSION:
        return DAMAGED, [
            f"journal {path}: schema version {version} is newer than this jobd "
            f"understands ({SCHEMA_VERSION}); run a newer jobd"
        ]
    states = dict(db.execute("SELECT state, count(*) FROM runs GROUP BY state").fetchall())
    cursors = db.execute("SELECT count(*) FROM cursors").fetchone()[0]
    total = sum(states.values())
    unfinished = states.get("queued", 0) + states.get("running", 0)
    return OK, [
        f"ok: journal {path}: schema {version}"
        + (f" (migrated to {SCHEMA_VERSION} at the next start)" if version < SCHEMA_VERSION else "")
        + f", {total} runs ({unfinished} unfinished: they re-run at the next start), "
        f"{cursors} cursors"
    ]


def run_journal_check(config: Path | None, path: Path | None) -> int:
    if path is None:
        from jobd._exceptions import ConfigError
        from jobd.config.loader import default_config_path, load_config

        try:
            path = load_config(config or default_config_path()).journal_path
        except ConfigError as exc:
            for p in exc.problems:
                print(p, file=sys.stderr)
            return 1
    code, lines = check_journal(path)
    for line in lines:
        print(line, file=sys.stdout if code == OK else sys.stderr)
    return code


__all__ = ["check_journal", "run_journal_check"]
