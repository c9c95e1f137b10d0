"""``bench/torture.py`` with a few kills, as the suite runs it: the default overlap, a watch
fed by a writer, a needs chain; every figure that must be 0 is."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "torture.py"


@pytest.mark.slow
def test_torture_with_a_few_kills() -> None:
    seed = random.randrange(1 << 20)
    res = subprocess.run(
        [sys.executable, str(BENCH), "--kills", "3", "--seed", str(seed), "--json"],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert res.stdout, res.stderr
    out = json.loads(res.stdout)
    for key in (
        "missing_slots",
        "unaccounted_slots",
        "finished_runs_repeated",
        "orphans",
        "lost_watch_changes",
        "lost_flow_steps",
    ):
        assert out[key] == [], f"{key}: {out[key]} (seed {seed})"
    assert out["exit_code"] == 0 and out["slots_checked"] > 0 and out["runs"] > 0
    assert res.returncode == 0
