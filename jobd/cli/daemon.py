"""``jobd`` and ``jobd check``: the only place that exits.

Exit codes: 0 clean stop (or a valid check, a sound journal); 1 invalid config or files
(check), or a config the daemon cannot start with; 2 bad usage; 3 the journal is in use,
damaged (corrupt, truncated, empty) or from a newer jobd; 4 the state directory's storage
failed (disk full, read-only, I/O error): the journal is not damaged. docs/journal.md."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SUBCOMMANDS = {
    "check": "jobd check [--config PATH] [FILE...]: validate the config and job files",
    "import": "jobd import crontab FILE | timer UNIT.timer [-o OUT]: job files from cron or "
    "systemd timers",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jobd",
        description="jobd, the job daemon: runs in the foreground until SIGTERM.",
        usage="jobd [--config PATH] [--log-level LEVEL] | jobd check ... | jobd import ...",
        epilog="commands:\n"
        + "\n".join(f"  {c:<8}{h}" for c, h in SUBCOMMANDS.items())
        + "\n\n'jobd COMMAND --help' tells more.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="daemon config (default: $JOBD_CONFIG, else /etc/jobd/jobd.toml)",
    )
    p.add_argument(
        "--log-level",
        default=os.environ.get("JOBD_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["check"]:
        cp = argparse.ArgumentParser(
            prog="jobd check", description="validate the config and job files"
        )
        cp.add_argument("--config", type=Path, default=None)
        cp.add_argument("files", nargs="*", type=Path)
        cargs = cp.parse_args(args_in[1:])
        from jobd.cli.check import run_check

        return run_check(cargs.config, cargs.files)
    if args_in[:1] == ["import"]:
        from jobd.cli.importer import run_import

        try:
            return run_import(args_in[1:])
        except SystemExit as exc:  # --help (0) or bad usage (2)
            return exc.code if isinstance(exc.code, int) else 2
    if args_in[:2] == ["journal", "check"]:
        jp = argparse.ArgumentParser(
            prog="jobd journal check", description="check the journal (read-only)"
        )
        jp.add_argument("--config", type=Path, default=None)
        jp.add_argument(
            "path",
            nargs="?",
            type=Path,
            default=None,
            help="the journal file (default: the config's state_dir/jobd.db)",
        )
        jargs = jp.parse_args(args_in[2:])
        from jobd.cli.journal import run_journal_check

        return run_journal_check(jargs.config, jargs.path)
    args = _parser().parse_args(args_in)
    if args.version:
        from jobd import __version__

        print(f"jobd {__version__}")
        return 0
    import gc

    # Start-up builds objects that live as long as the daemon (modules, jobs, plans): the
    # cyclic GC walking them while they are built cost 10% of the start-up with 10,000 jobs.
    # It is back on, with them frozen, once the daemon is ready (below).
    gc.disable()
    from jobd.logs import configure

    configure(args.log_level)
    from jobd._exceptions import ConfigError
    from jobd.config.loader import default_config_path, load_config

    path = args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        gc.enable()
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 1
    import anyio

    from jobd.control.limits import raise_nofile
    from jobd.executors.local import LocalExecutor
    from jobd.supervisor.daemon import Daemon

    raise_nofile()  # each control client holds a descriptor: use what the system allows
    # Orphaned descendants of runs come to the daemon, which reaps those it stops.
    LocalExecutor.adopt_orphans()

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(Daemon(config).run)
            # Start-up's objects (jobs, plans, modules) live as long as the daemon: out of the
            # cyclic GC's reach, a full collection no longer walks them all (measured with
            # 10,000 jobs: a 19 ms stall of the loop, then ~0). Garbage is still freed by
            # reference counting; only cycles among these objects would stay.
            gc.freeze()
            gc.enable()

    try:
        anyio.run(serve)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:  # errors of the task group arrive grouped
        return _exit_code(exc, config.socket)
    finally:
        gc.enable()  # for a caller in the same process (tests)
    return 0


def _exit_code(exc: BaseException, socket: Path) -> int:
    """Print what stopped the daemon at start-up; its exit code, or re-raise a bug."""
    from jobd._exceptions import ConfigError, JournalError, StorageError

    leaves = list(_leaves(exc))
    if leaves and all(isinstance(e, JournalError | ConfigError | OSError) for e in leaves):
        for e in leaves:
            where = f"control socket {socket}: " if isinstance(e, OSError) else ""
            print(f"jobd: {where}{e}", file=sys.stderr)
        if any(isinstance(e, StorageError) for e in leaves):
            return 4
        return 3 if any(isinstance(e, JournalError) for e in leaves) else 1
    raise exc


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


if __name__ == "__main__":
    raise SystemExit(main())
