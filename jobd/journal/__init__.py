"""The journal: the durable record of runs, time-slot cursors, paused jobs and watch manifests.

``SQLiteJournal`` is the daemon's; ``MemoryJournal`` passes the same contract suite and serves
pure-logic tests. The interface is ``jobd.journal.abc.Journal``.
"""

from __future__ import annotations

from jobd.journal.abc import Journal, ManifestEntry, RunRecord
from jobd.journal.memory import MemoryJournal
from jobd.journal.sqlite import SCHEMA_VERSION, JournalStats, SQLiteJournal

__all__ = [
    "SCHEMA_VERSION",
    "Journal",
    "JournalStats",
    "ManifestEntry",
    "MemoryJournal",
    "RunRecord",
    "SQLiteJournal",
]
