"""The "transform" job of config/jobs.d/pipeline.toml.

Reads the CSV files that changed, writes a summary of each to $OUTBOX/summary.txt, and hands
the total row count to downstream jobs through the JOBD_OUTPUT file (``rows=N``, read by
"report" as ``needs.transform.outputs.rows``).

Whoever can drop files into the inbox chooses their names and kinds, so: the changed paths
come from JOBD_CHANGED_PATHS_FILE (NUL-separated: any name reads back as itself, newlines
included); symlinks and anything but regular files are skipped, never followed; a name or a
column that holds a newline or another unprintable character is written quoted (``repr``), so
nothing can add a line to the summary.
"""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path


def changed_paths() -> list[Path]:
    listing = os.environ.get("JOBD_CHANGED_PATHS_FILE")
    if listing:
        with open(listing, "rb") as f:
            return [Path(os.fsdecode(p)) for p in f.read().split(b"\0") if p]
    return [Path(p) for p in os.environ.get("JOBD_CHANGED_PATHS", "").splitlines() if p]


def shown(text: str) -> str:
    return text if text.isprintable() else repr(text)


def summarize(path: Path) -> tuple[str, int]:
    """One summary line for ``path`` and its row count."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:  # removed again since the change was seen
        return f"{shown(path.name)}: gone", 0
    except OSError:  # a symlink (O_NOFOLLOW), or unreadable
        return f"{shown(path.name)}: skipped (not a regular file)", 0
    with open(fd, newline="", encoding="utf-8", errors="replace") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a fifo or a device
            return f"{shown(path.name)}: skipped (not a regular file)", 0
        rows = list(csv.reader(f))
    body = rows[1:]  # the first row is the header
    columns = ", ".join(map(shown, rows[0])) if rows else "-"
    return f"{shown(path.name)}: {len(body)} rows; columns: {columns}", len(body)


def main() -> None:
    outbox = Path(os.environ.get("OUTBOX", "outbox"))
    outbox.mkdir(parents=True, exist_ok=True)
    total = 0
    lines = []
    for path in changed_paths():
        line, rows = summarize(path)
        lines.append(line)
        total += rows
    with (outbox / "summary.txt").open("a", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    print("\n".join(lines))
    output = os.environ.get("JOBD_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as f:
            f.write(f"rows={total}\n")


if __name__ == "__main__":
    main()
