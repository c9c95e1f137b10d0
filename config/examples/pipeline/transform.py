"""The "transform" job of config/jobs.d/pipeline.toml.

Reads the CSV files named in JOBD_CHANGED_PATHS (one path a line), writes a summary of each
to $OUTBOX/summary.txt, and hands the total row count to downstream jobs through the
JOBD_OUTPUT file (``rows=N``, read by "report" as ``needs.transform.outputs.rows``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path


def main() -> None:
    changed = [Path(p) for p in os.environ.get("JOBD_CHANGED_PATHS", "").splitlines() if p]
    outbox = Path(os.environ.get("OUTBOX", "outbox"))
    outbox.mkdir(parents=True, exist_ok=True)
    total = 0
    lines = []
    for path in changed:
        if not path.is_file():  # removed again since the change was seen
            lines.append(f"{path.name}: gone")
            continue
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        body = rows[1:]  # the first row is the header
        total += len(body)
        columns = ", ".join(rows[0]) if rows else "-"
        lines.append(f"{path.name}: {len(body)} rows; columns: {columns}")
    with (outbox / "summary.txt").open("a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    print("\n".join(lines))
    output = os.environ.get("JOBD_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as f:
            f.write(f"rows={total}\n")


if __name__ == "__main__":
    main()
