"""``jobd import crontab FILE`` and ``jobd import timer UNIT.timer``: write job files from a
crontab or a systemd timer; what could not be carried over goes to stderr (docs/migrating.md).

Exit 0 when jobs were written; 1 when the input cannot be read or holds nothing to import; 2
for bad usage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from jobd.migrate._emit import Result, render


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="jobd import", description="write jobd job files from cron or systemd timers"
    )
    sub = ap.add_subparsers(dest="kind", metavar="KIND", required=True)
    c = sub.add_parser(
        "crontab",
        help="a crontab file (crontab -l > FILE)",
        description="convert a crontab (crontab(5)) into a job file",
    )
    c.add_argument("file", type=Path, metavar="FILE", help="the crontab; - reads stdin")
    c.add_argument(
        "--system",
        action="store_true",
        help="a system crontab (/etc/crontab, /etc/cron.d/*): with a user field",
    )
    t = sub.add_parser(
        "timer",
        help="a systemd .timer unit and its .service",
        description="convert a systemd timer and its service into a job file",
    )
    t.add_argument("file", type=Path, metavar="UNIT.timer")
    t.add_argument(
        "--service",
        type=Path,
        metavar="UNIT.service",
        help="the service it starts (default: Unit= of the timer, else the same "
        "name with .service, beside it)",
    )
    for p in (c, t):
        p.add_argument(
            "-o",
            "--output",
            type=Path,
            metavar="FILE",
            help="write the job file here (default: stdout); refuses to overwrite",
        )
    return ap


def run_import(
    argv: list[str],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    args = parser().parse_args(argv)
    try:
        if args.kind == "crontab":
            from jobd.migrate import crontab

            text = (stdin or sys.stdin).read() if str(args.file) == "-" else args.file.read_text()
            result = crontab.convert(text, system=args.system)
            kind = "crontab"
        else:
            from jobd.migrate import systemd

            timer_text = args.file.read_text()
            service = args.service or _service_of(args.file, timer_text)
            result = systemd.convert(
                timer_text, service.read_text(), name=_job_name(args.file.stem)
            )
            kind = f"systemd timer, with {service.name}"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        err.write(f"jobd import: {args.file}: {getattr(exc, 'strerror', None) or exc}\n")
        return 1
    return _write(result, source=str(args.file), kind=kind, output=args.output, out=out, err=err)


def _service_of(timer: Path, text: str) -> Path:
    from jobd.migrate.systemd import parse_unit

    unit = parse_unit(text).get("Timer", {}).get("Unit")
    return timer.with_name(unit[-1]) if unit else timer.with_suffix(".service")


def _job_name(stem: str) -> str:
    from jobd.migrate._emit import job_id_for

    return job_id_for(stem.replace("@", "-"), set(), "timer")


def _write(
    result: Result, *, source: str, kind: str, output: Path | None, out: TextIO, err: TextIO
) -> int:
    for note in result.notes:
        err.write(note.render(source) + "\n")
    if not result.jobs:
        err.write(f"jobd import: {source}: nothing to import\n")
        return 1
    text = render(result, source=source, kind=kind)
    if output is None:
        out.write(text)
    else:
        try:
            with output.open("x") as f:
                f.write(text)
        except OSError as exc:
            err.write(f"jobd import: {output}: {exc.strerror or exc}\n")
            return 1
    err.write(
        f"jobd import: {len(result.jobs)} jobs from {source}"
        + (f" written to {output}" if output else "")
        + (f"; {len(result.notes)} notes above" if result.notes else "")
        + "\n"
    )
    return 0
