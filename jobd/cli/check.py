"""``jobd check [--config PATH] [FILE...]``: validate the daemon config and job files.

Exit 0 when everything is valid (``ok: N jobs in M files`` on stdout); exit 1 with one line
per problem on stderr otherwise. Nothing is started.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from jobd._exceptions import ConfigError, Problem
from jobd.config.loader import (
    default_config_path,
    display_path,
    job_files,
    load_config,
    load_job_files,
    one_line,
)


def run_check(
    config_path: Path | None,
    files: Sequence[Path],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Validate the daemon config at ``config_path`` (default: ``$JOBD_CONFIG``, else
    ``/etc/jobd/jobd.toml``) and every job file of its ``jobs_dir``, or only ``files``.

    Named files still get the checks across files (unique ids, ``needs``) against the rest of
    ``jobs_dir``, as if they were in it: one named like a file there stands in for it. Prints
    one line per problem on ``err`` and returns 1, else prints ``ok: N jobs in M files`` on
    ``out`` and returns 0.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    path = default_config_path() if config_path is None else config_path
    try:
        config = load_config(path)
    except ConfigError as e:
        for problem in e.problems:
            print(problem, file=err)
        return 1

    lines: list[str] = []
    try:
        listed = job_files(config.jobs_dir)
    except (OSError, ValueError) as e:
        listed = []
        why = getattr(e, "strerror", None) or e
        lines.append(
            str(
                Problem(
                    file=one_line(display_path(config.jobs_dir)),
                    message=f"cannot read jobs_dir: {why}",
                )
            )
        )
    if files:
        named = list(dict.fromkeys(Path(os.path.abspath(f)) for f in files))
        names = {p.name for p in named}
        paths = sorted([p for p in listed if p.name not in names] + named, key=lambda p: p.name)
        shown = named
    else:
        paths = shown = listed
    load = load_job_files(paths, config)
    for file in dict.fromkeys(shown):
        lines.extend(load.problems.get(file, ()))
    for line in lines:
        print(line, file=err)
    if lines:
        return 1
    wanted = set(shown)
    count = sum(1 for job in load.jobs.values() if job.source.file in wanted)
    n_files = len(set(shown))
    print(f"ok: {count} job{'s' * (count != 1)} in {n_files} file{'s' * (n_files != 1)}", file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m jobd.cli.check [--config PATH] [FILE...]``."""
    parser = argparse.ArgumentParser(
        prog="jobd check",
        description="Validate the daemon config and the job files without starting anything.",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the daemon config (default: $JOBD_CONFIG, else /etc/jobd/jobd.toml)",
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="check only these job files (still against the rest of jobs_dir)",
    )
    args = parser.parse_args(argv)
    return run_check(args.config, args.files)


if __name__ == "__main__":
    raise SystemExit(main())
