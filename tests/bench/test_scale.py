"""``bench/scale.py`` at a tiny size, as a smoke test: the journal it builds with the journal's
own schema and encoding opens in a real daemon, jobctl answers on it, and the prune deletes
exactly the runs due (the bench checks that count itself and exits non-zero otherwise)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "scale.py"


def test_scale_bench_at_a_tiny_size(tmp_path: Path) -> None:
    res = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            *("--jobs", "200", "--runs", "2000", "--run-jobs", "20", "--idle", "0.2"),
            *("--repeat", "1", "--samples", "1", "--quiet", "0.1", "--prune-fraction", "0.25"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # where the journal is built and kept
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "jobd-scale-2000-20" / "var" / "jobd.db").is_file()
    # 200 jobs loaded and planned: each cron job and each "every hour/day" job is due once in
    # a day down; of the "every week" ones (i % 6 == 4) none or some, by the week's phase.
    plan = re.search(
        r"plan a restart after a day down +[\d.]+ s \(([\d,]+) catch-up runs\)", res.stdout
    )
    assert plan is not None, res.stdout
    assert 167 <= int(plan[1].replace(",", "")) <= 200
    deleted = [int(n.replace(",", "")) for n in re.findall(r"([\d,]+) runs deleted", res.stdout)]
    # nothing is older than the 30 days the runs span; the oldest quarter is: 500 of 2,000,
    # give or take the run on each edge.
    assert deleted[0] == 0 and 499 <= deleted[1] <= 501, res.stdout
    assert "jobctl p50" in res.stdout and "runs JOB" in res.stdout
