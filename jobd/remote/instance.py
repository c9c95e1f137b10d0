"""This daemon's instance id on the broker: random, made once, kept in the state directory.

Task ids and Redis keys carry it, so two daemons sharing a broker (or a journal path on two
hosts) never take each other's runs, and a restarted daemon finds its own again."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE = "celery-instance"


def instance_id(state_dir: Path) -> str:
    path = state_dir / FILE
    try:
        text = path.read_text().strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    new = secrets.token_hex(6)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(new + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # a racing writer loses cleanly: one id wins, both read it after
    return path.read_text().strip()
