"""Functions scheduled by config/examples/pyproject.toml."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime


def report() -> None:
    """Print a line about the machine: once an hour, at a fixed minute of the hour."""
    usage = shutil.disk_usage("/")
    free = usage.free / usage.total * 100
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M}Z job {os.environ.get('JOBD_JOB_ID')} "
        f"(run {os.environ.get('JOBD_RUN_ID')}): {free:.0f}% of / is free"
    )
