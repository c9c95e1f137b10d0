"""Executors: run one process for one attempt of a run (``abc.Executor``).

``LocalExecutor`` runs it on this machine; ``argv_for`` turns a job's action into its argv;
``find_leftovers``/``stop_leftovers`` clean up after a daemon crash. See docs/executors.md.
"""

from __future__ import annotations

from jobd.executors.abc import Cancel, Executor, ProcessResult, ProcessSpec, StartedCallback
from jobd.executors.actions import argv_for, daemon_python, read_env_file
from jobd.executors.local import LocalExecutor
from jobd.executors.process import (
    INSTANCE_VAR,
    RUN_ID_VAR,
    find_leftovers,
    process_start_ticks,
    stop_leftovers,
)

__all__ = [
    "INSTANCE_VAR",
    "RUN_ID_VAR",
    "Cancel",
    "Executor",
    "LocalExecutor",
    "ProcessResult",
    "ProcessSpec",
    "StartedCallback",
    "argv_for",
    "daemon_python",
    "find_leftovers",
    "process_start_ticks",
    "read_env_file",
    "stop_leftovers",
]
