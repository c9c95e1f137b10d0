"""``jobctl``: the client of the daemon's control socket (docs/jobctl.md).

Exit codes: 0 ok (with ``--wait``: the run succeeded); 1 the run did not succeed (or the daemon
failed internally); 2 bad usage or a request the daemon refused; 3 the daemon cannot be reached.

It must start instantly: plain blocking sockets, no asyncio or anyio on the import path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence

from jobd.cli import _format as fmt
from jobd.control import protocol as p

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any, NoReturn

DEFAULT_SOCKET = "/run/jobd/jobd.sock"
DEFAULT_CONFIG = "/etc/jobd/jobd.toml"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
_REFUSALS = frozenset(
    {
        p.NOT_FOUND,
        p.REFUSED,
        p.BAD_STATE,
        p.CONFIG_INVALID,
        p.INVALID_PARAMS,
        p.INVALID_REQUEST,
        p.METHOD_NOT_FOUND,
    }
)


class Usage(Exception):
    """Bad usage found after argument parsing (exit 2)."""


class Unreachable(Exception):
    """The daemon cannot be reached (exit 3)."""


# --- where the socket is -------------------------------------------------------------------


def socket_from_config(path: str) -> str | None:
    """``[daemon] socket`` of a daemon config, resolved against the config's directory; None
    when it names none. Raises ``OSError`` or ``ValueError`` for a file that cannot be read."""
    import tomllib  # only when needed: it is not free to import

    with open(path, "rb") as f:
        data = tomllib.load(f)
    daemon = data.get("daemon")
    sock = daemon.get("socket") if isinstance(daemon, dict) else None
    if sock is None:
        return None
    if not isinstance(sock, str) or not sock:
        raise ValueError("daemon.socket: must be a path (a string)")
    base = os.path.dirname(os.path.realpath(path))
    return os.path.normpath(os.path.join(base, os.path.expanduser(sock)))


def resolve_socket(arg: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """The socket path and where it came from: ``--socket``, ``$JOBD_SOCKET``, the socket named
    in ``$JOBD_CONFIG`` (else in /etc/jobd/jobd.toml when readable), else the default."""
    if arg:
        return arg, "--socket"
    if env.get("JOBD_SOCKET"):
        return env["JOBD_SOCKET"], "$JOBD_SOCKET"
    config = env.get("JOBD_CONFIG")
    if config:
        try:
            sock = socket_from_config(config)
        except (OSError, ValueError) as exc:
            raise Usage(
                f"cannot read the socket path from $JOBD_CONFIG ({config}): {exc}"
            ) from None
        if sock is not None:
            return sock, f"$JOBD_CONFIG ({config})"
    elif os.path.exists(DEFAULT_CONFIG):
        try:
            sock = socket_from_config(DEFAULT_CONFIG)
        except (OSError, ValueError):
            sock = None  # the daemon will complain about its own config
        if sock is not None:
            return sock, DEFAULT_CONFIG
    return DEFAULT_SOCKET, "the default"


# --- talking to the daemon -----------------------------------------------------------------


class Session:
    """One connection for the whole command."""

    def __init__(self, path: str, source: str, timeout: float) -> None:
        self.path = path
        self.source = source
        try:
            self.client = p.Client(path, timeout=timeout)
        except OSError as exc:
            raise Unreachable(self._why(exc)) from None

    def _why(self, exc: OSError) -> str:
        reason = exc.strerror or str(exc) or type(exc).__name__
        hint = (
            "; is jobd running?"
            if isinstance(exc, FileNotFoundError | ConnectionRefusedError)
            else ""
        )
        return f"cannot reach the daemon at {self.path} (from {self.source}): {reason}{hint}"

    def call(self, method: str, **params: Any) -> Any:
        try:
            return self.client.call(method, **params)
        except p.RPCError:
            raise
        except OSError as exc:
            raise Unreachable(self._why(exc)) from None

    def notifications(self, sid: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """This subscription's notifications, without a timeout, until its ``end``."""
        self.client.settimeout(None)
        try:
            for msg in self.client.notifications():
                params = msg.get("params")
                if isinstance(params, dict) and params.get("subscription") == sid:
                    yield str(msg["method"]), params
                    if msg["method"] == "end":
                        return
        except OSError as exc:
            raise Unreachable(self._why(exc)) from None

    def close(self) -> None:
        self.client.close()


# --- output --------------------------------------------------------------------------------


class Out:
    def __init__(self, as_json: bool) -> None:
        self.json = as_json
        self.style = fmt.Style(fmt.wants_colour(sys.stdout))
        self._now: datetime | None = None

    @property
    def now(self) -> datetime:
        """One "now" for the whole output (datetime is imported only when a time is shown)."""
        if self._now is None:
            self._now = fmt.utcnow()
        return self._now

    def print(self, text: str = "") -> None:
        sys.stdout.write(text + "\n")

    def dump(self, obj: Any) -> None:
        sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")

    def line(self, obj: Any) -> None:
        """One JSON object per line, flushed (streams)."""
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def when(self, value: Any) -> str:
        return fmt.relative(fmt.parse_time(value), self.now)

    def run_state(self, run: Mapping[str, Any]) -> str:
        state = str(run.get("state") or "-")
        return self.style.state(state)


def _invalid_files(out: Out, files: Sequence[Mapping[str, Any]]) -> None:
    if not files:
        return
    out.print()
    out.print(out.style.state(f"invalid files ({len(files)}), rejected whole:", "invalid"))
    for f in files:
        out.print(f"  {f.get('file')}")
        for err in f.get("errors") or []:
            out.print(f"    {err}")


def _run_duration(run: Mapping[str, Any], now: datetime) -> str:
    started = fmt.parse_time(run.get("started_at"))
    if started is None:
        return "-"
    finished = fmt.parse_time(run.get("finished_at")) or now
    return fmt.duration((finished - started).total_seconds())


def _summary(run: Mapping[str, Any], out: Out) -> str:
    """``run 42 (etl) failed (exit 3) after 2.0s: why``."""
    state = str(run.get("state"))
    text = f"run {run.get('run_id')} ({run.get('job_id')}) {out.style.state(state)}"
    if run.get("exit_code") is not None and state != "succeeded":
        text += f" (exit {run['exit_code']})"
    if run.get("started_at"):
        text += f" after {_run_duration(run, fmt.utcnow())}"
        attempts = run.get("attempt")
        if isinstance(attempts, int) and attempts > 1:
            text += f" ({attempts} attempts)"
    message = run.get("message")
    if message and message != f"exit code {run.get('exit_code')}":
        text += f": {message}"
    return text


# --- commands ------------------------------------------------------------------------------


def cmd_status(s: Session, a: argparse.Namespace, out: Out) -> int:
    """Exit 1 when some job files are invalid (rejected), so scripts and checks notice."""
    st = s.call("status")
    code = EXIT_FAILED if st.get("invalid_files") else EXIT_OK
    if out.json:
        out.dump(st)
        return code
    started = fmt.parse_time(st.get("started_at"))
    uptime = fmt.duration(float(st.get("uptime_seconds") or 0))
    out.print(
        f"{out.style.bold('jobd ' + str(st.get('version', '?')))}  pid {st.get('pid')}  "
        f"up {uptime} (since {fmt.clock(started)})"
    )
    paused = list(st.get("paused") or [])
    jobs = f"{st.get('jobs_loaded', 0)} loaded"
    if paused:
        jobs += f", {len(paused)} paused ({', '.join(paused)})"
    invalid = list(st.get("invalid_files") or [])
    rows = [
        ["jobs", jobs],
        ["runs", f"{st.get('runs_running', 0)} running, {st.get('runs_queued', 0)} queued"],
        ["socket", s.path],
    ]
    if "loop_stall_max_seconds" in st:  # an older daemon does not say
        longest = float(st["loop_stall_max_seconds"] or 0) * 1000
        over = int(st.get("loop_stalls") or 0)
        rows.append(["loop", f"longest stall {longest:.1f} ms, {over} over 10 ms since ready"])
    stale = list(st.get("stale") or [])
    if stale:
        rows.append(["stale", out.style.state(", ".join(stale), "stale")])
    if invalid:
        rows.append(["invalid", out.style.state(fmt.plural(len(invalid), "file"), "invalid")])
    for k, v in rows:
        out.print(f"{k:<9}{v}")
    _invalid_files(out, invalid)
    return code


def cmd_list(s: Session, a: argparse.Namespace, out: Out) -> int:
    res = s.call("list")
    if out.json:
        out.dump(res)
        return EXIT_OK
    rows = []
    for job in res.get("jobs") or []:
        last = job.get("last_run")
        last_text = "-"
        if isinstance(last, dict):
            last_text = (
                f"#{last.get('run_id')} {out.run_state(last)} {out.when(last.get('finished_at'))}"
            )
        flags = []
        if job.get("paused"):
            flags.append(out.style.state("paused"))
        if job.get("enabled") is False:
            flags.append(out.style.dim("disabled"))
        if job.get("stale"):
            flags.append(out.style.state("stale"))
        row = [
            str(job.get("job_id")),
            "; ".join(job.get("triggers") or []) or "manual",
            out.when(job.get("next_run")),
            last_text,
            " ".join(flags),
        ]
        if a.wide:
            row.insert(1, str(job.get("description") or "-"))
        rows.append(row)
    if rows:
        headers = ["JOB", "TRIGGERS", "NEXT", "LAST RUN", ""]
        if a.wide:
            headers.insert(1, "DESCRIPTION")
        out.print(fmt.table(headers, rows, out.style))
    else:
        out.print("no jobs loaded")
    _invalid_files(out, list(res.get("invalid_files") or []))
    return EXIT_OK


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


DURATION_KEYS = frozenset(
    {"timeout", "kill_grace", "start_deadline", "stale_after", "delay", "max_delay", "debounce"}
)


def durations(value: Any, key: str | None = None) -> Any:
    """The definition with durations in seconds written as a job file does (``10s``)."""
    if isinstance(value, dict):
        return {k: durations(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [durations(v) for v in value]
    if key in DURATION_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return fmt.spec(float(value))
    return value


def cmd_show(s: Session, a: argparse.Namespace, out: Out) -> int:
    job = s.call("show", job_id=a.job)
    if out.json:
        out.dump(job)
        return EXIT_OK
    where = str(job.get("file"))
    if job.get("line"):
        where += f":{job['line']}"
    zone = job.get("timezone")
    out.print(f"{'job':<10}{out.style.bold(str(job.get('job_id')))}")
    if job.get("description"):
        out.print(f"{'about':<10}{job['description']}")
    out.print(f"{'file':<10}{where}")
    out.print(f"{'paused':<10}{'yes' if job.get('paused') else 'no'}")
    if job.get("stale"):
        since = fmt.parse_time(job.get("stale_since"))
        out.print(
            f"{'stale':<10}{out.style.state('yes', 'stale')}: no success since "
            f"{fmt.when_text(since, out.now, zone)}"
        )
    definition = durations(job.get("definition") or {})
    if isinstance(definition, dict) and definition:
        out.print("definition")
        width = max(len(str(k)) for k in definition) + 2
        for k, v in definition.items():
            out.print(f"  {k:<{width}}{_value(v)}")
    times = job.get("next_fire_times") or []
    out.print(
        f"next runs ({zone})"
        if times and zone
        else "next runs"
        if times
        else "next runs  none (no time trigger, or disabled)"
    )
    for t in times:
        when = fmt.parse_time(t)
        out.print(f"  {fmt.when_text(when, out.now, zone)}")
    return EXIT_OK


def _params(pairs: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise Usage(f"-p {pair!r}: expected KEY=VALUE")
        params[key] = value
    return params


def _unbase64(data: str) -> bytes:
    import binascii  # only for logs

    return binascii.a2b_base64(data)


def _follow(s: Session, run: Mapping[str, Any], out: Out, *, offset: int = 0) -> dict[str, Any]:
    """Stream a run's log (and, with --json, its state changes) until it ends; its last state."""
    sub = s.call(
        "subscribe",
        run_id=run["run_id"],
        logs=True,
        offset=offset,
        encoding="text" if out.json else "base64",
    )
    final: dict[str, Any] = dict(sub.get("run") or run)
    sink = sys.stdout.buffer
    for method, params in s.notifications(int(sub["subscription"])):
        if method == "log":
            if out.json:
                out.line(
                    {"type": "log", "run_id": params.get("run_id"), "data": params.get("data")}
                )
            else:
                sink.write(_unbase64(params.get("data") or ""))
                sink.flush()
        elif method == "run":
            final = dict(params.get("run") or final)
            if out.json:
                out.line({"type": "run", "run": final})
        elif method == "end":
            if isinstance(params.get("run"), dict):
                final = dict(params["run"])
            elif params.get("reason") != "finished":
                final = dict(s.call("logs", run_id=final["run_id"], max_bytes=0)["run"])
    if out.json:
        out.line({"type": "end", "run": final})
    return final


def cmd_run(s: Session, a: argparse.Namespace, out: Out) -> int:
    res = s.call("run", job_id=a.job, params=_params(a.param))
    run = res["run"]
    if not a.wait:
        if out.json:
            out.dump(run)
        else:
            out.print(str(run["run_id"]))
        return EXIT_OK
    if out.json:
        out.line({"type": "run", "run": run})
    else:
        out.print(str(run["run_id"]))
        sys.stdout.flush()
    final = _follow(s, run, out)
    if not out.json:
        sys.stdout.flush()
        sys.stderr.write(_summary(final, Out(False)) + "\n")
    return EXIT_OK if final.get("state") == "succeeded" else EXIT_FAILED


def _target(value: str, as_job: bool) -> dict[str, Any]:
    """A RUN_ID (digits) or a JOB; ``--job`` reads digits as a job id."""
    if value.isdigit() and not as_job:
        return {"run_id": int(value)}
    return {"job_id": value}


def cmd_cancel(s: Session, a: argparse.Namespace, out: Out) -> int:
    target = _target(a.target, a.job)
    res = s.call("cancel", **target)
    ids = list(res.get("cancelled") or [])
    if out.json:
        out.dump(res)
    elif ids:
        out.print(
            f"cancelled {'run' if len(ids) == 1 else 'runs'} {', '.join(str(i) for i in ids)}"
        )
    elif "run_id" in target:
        out.print(f"nothing to cancel: run {target['run_id']} has already finished")
    else:
        out.print(f"nothing to cancel: job '{target['job_id']}' has no queued or running run")
    return EXIT_OK


def cmd_runs(s: Session, a: argparse.Namespace, out: Out) -> int:
    res = s.call("runs", job_id=a.job, limit=a.limit, state=a.state)
    runs = list(res.get("runs") or [])
    if out.json:
        out.dump(runs)
        return EXIT_OK
    if not runs:
        out.print("no runs")
        return EXIT_OK
    rows = []
    for r in runs:
        started = r.get("started_at") or r.get("queued_at")
        code = r.get("exit_code")
        folded = len(r.get("folded_slots") or ())
        trigger = str(r.get("trigger")) + (f"+{folded}" if folded else "")
        rows.append(
            [
                str(r.get("run_id")),
                str(r.get("job_id")),
                trigger,
                out.run_state(r),
                "-" if code is None else str(code),
                str(r.get("attempt")),
                str(r.get("flow_id") or "-"),
                out.when(started),
                _run_duration(r, out.now),
            ]
        )
    out.print(
        fmt.table(
            ["RUN", "JOB", "TRIGGER", "STATE", "EXIT", "TRY", "FLOW", "STARTED", "TOOK"],
            rows,
            out.style,
        )
    )
    return EXIT_OK


def cmd_logs(s: Session, a: argparse.Namespace, out: Out) -> int:
    target = _target(a.target, a.job)
    encoding = "text" if out.json else "base64"
    offset = 0
    text: list[str] = []
    sink = sys.stdout.buffer
    while True:
        res = s.call("logs", **target, offset=offset, max_bytes=p.MAX_CHUNK, encoding=encoding)
        if out.json:
            text.append(res["data"])
        else:
            sink.write(_unbase64(res["data"]))
        offset = int(res["next_offset"])
        target = {"run_id": res["run"]["run_id"]}  # the same run to the end, whatever starts
        if res["eof"]:
            break
    run = res["run"]
    if a.follow and str(run.get("state")) in {"queued", "running"}:
        if out.json:
            out.line({"type": "log", "run_id": run["run_id"], "data": "".join(text)})
        sink.flush()
        _follow(s, run, out, offset=offset)
        return EXIT_OK
    if out.json:
        out.dump({"run": run, "log": "".join(text)})
    return EXIT_OK


def cmd_pause(s: Session, a: argparse.Namespace, out: Out) -> int:
    res = s.call("pause", job_id=a.job)
    if out.json:
        out.dump(res)
    else:
        out.print(f"paused job '{a.job}': its triggers stay off until 'jobctl resume {a.job}'")
    return EXIT_OK


def cmd_resume(s: Session, a: argparse.Namespace, out: Out) -> int:
    res = s.call("resume", job_id=a.job)
    if out.json:
        out.dump(res)
    else:
        out.print(f"resumed job '{a.job}'")
    return EXIT_OK


def cmd_reload(s: Session, a: argparse.Namespace, out: Out) -> int:
    st = s.call("reload")
    if out.json:
        out.dump(st)
        return EXIT_OK
    invalid = list(st.get("invalid_files") or [])
    out.print(
        f"reloaded: {fmt.plural(int(st.get('jobs_loaded') or 0), 'job')} loaded, "
        f"{fmt.plural(len(invalid), 'invalid file')}"
    )
    _invalid_files(out, invalid)
    return EXIT_OK


def cmd_why(s: Session, a: argparse.Namespace, out: Out) -> int:
    res = s.call("why", job_id=a.job)
    if out.json:
        out.dump(res)
        return EXIT_OK
    for line in res.get("lines") or []:
        out.print(str(line))
    return EXIT_OK


def cmd_metrics(s: Session, a: argparse.Namespace, out: Out) -> int:
    res = s.call("metrics")
    if out.json:
        out.dump(res)
    else:
        sys.stdout.write(str(res.get("text") or ""))
    return EXIT_OK


# --- arguments -----------------------------------------------------------------------------


def _limit(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= n <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return n


# One parser per command, built only for the command given: building all of them costs more
# than the rest of jobctl's start.
HELP: dict[str, str] = {
    "status": "daemon pid, version, uptime, jobs, runs, invalid files",
    "list": "every job: triggers, next run, last run, paused",
    "show": "a job's resolved definition and its next 5 fire times",
    "run": "start a run now and print its run id",
    "cancel": "cancel a run, or every queued or running run of a job",
    "runs": "run history, newest first",
    "logs": "a run's output (a JOB means its latest run)",
    "pause": "stop a job's triggers (survives restarts)",
    "resume": "restart a job's triggers",
    "reload": "re-read the config and job files now",
    "why": "why a job did or did not run, and when it runs next",
    "metrics": "the daemon's metrics in Prometheus text format",
}
_EPILOG = (
    "commands:\n"
    + "\n".join(f"  {c:<8}{h}" for c, h in HELP.items())
    + "\n\n'jobctl COMMAND --help' tells more.\nexit codes: 0 ok (with --wait: the run "
    "succeeded); 1 the run did not succeed;\n  2 bad usage or refused by the daemon; "
    "3 the daemon cannot be reached"
)


class _ParseError(SystemExit):
    """Bad usage (exit 2); ``main`` prints it, as JSON under ``--json``."""

    def __init__(self, usage: str, message: str) -> None:
        super().__init__(EXIT_USAGE)
        self.usage = usage
        self.message = message


class _Parser(argparse.ArgumentParser):
    """Raises ``_ParseError`` instead of printing and exiting, so ``main`` can answer in JSON
    under ``--json``."""

    def error(self, message: str) -> NoReturn:
        raise _ParseError(self.format_usage(), f"{self.prog}: error: {message}")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter without its ``import shutil`` (a few ms of jobctl's start)."""

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog,
            indent_increment,
            max_help_position,
            width if width is not None else fmt.columns() - 2,
        )


def _global_options(ap: argparse.ArgumentParser, default: Any) -> None:
    ap.add_argument(
        "--socket",
        metavar="PATH",
        default=default,
        help="the daemon's socket (default: $JOBD_SOCKET, else the socket named in "
        f"$JOBD_CONFIG, else {DEFAULT_SOCKET})",
    )
    ap.add_argument(
        "--json", action="store_true", default=default, help="print machine-readable JSON"
    )


def parser() -> argparse.ArgumentParser:
    """``jobctl [--socket PATH] [--json] COMMAND ...``; the command's own arguments are parsed
    by ``command_parser``."""
    ap = _Parser(
        prog="jobctl",
        description="Control the jobd daemon.",
        usage="jobctl [-h] [--version] [--socket PATH] [--json] COMMAND ...",
        epilog=_EPILOG,
        formatter_class=_Formatter,
    )
    _global_options(ap, None)
    ap.add_argument("--version", action="store_true", help="print jobctl's version and exit")
    ap.add_argument("command", metavar="COMMAND", nargs="?")
    ap.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return ap


def command_parser(command: str) -> argparse.ArgumentParser:
    c = _Parser(prog=f"jobctl {command}", description=HELP[command], formatter_class=_Formatter)
    _global_options(c, argparse.SUPPRESS)  # also accepted after the command
    if command in ("show", "run", "pause", "resume", "why"):
        c.add_argument("job", metavar="JOB")
    if command == "run":
        c.add_argument(
            "-p",
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="set a param for this run (repeatable)",
        )
        c.add_argument(
            "--wait", action="store_true", help="stream the run's log and exit by its result"
        )
    elif command in ("cancel", "logs"):
        c.add_argument("target", metavar="RUN_ID|JOB", help="a number is a run id")
        c.add_argument("--job", action="store_true", help="read a number as a job id")
        if command == "logs":
            c.add_argument("-f", "--follow", action="store_true", help="follow until the run ends")
    elif command == "list":
        c.add_argument("-w", "--wide", action="store_true", help="also show each job's description")
    elif command == "runs":
        c.add_argument("job", metavar="JOB", nargs="?")
        c.add_argument("--limit", type=_limit, default=20, metavar="N", help="at most N (20)")
        c.add_argument("--state", choices=p.RUN_STATES, help="only runs in this state")
    return c


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Raises ``SystemExit`` as argparse does: 0 after --help, 2 for bad usage."""
    ap = parser()
    top = ap.parse_args(argv)
    if top.version:
        return argparse.Namespace(command=None, version=True, json=bool(top.json))
    if top.command is None:
        ap.error("a COMMAND is required (jobctl --help lists them)")
    if top.command not in HELP:
        import difflib

        near = difflib.get_close_matches(top.command, list(HELP), n=1)
        ap.error(
            f"unknown command {top.command!r}"
            + (f"; did you mean {near[0]!r}?" if near else "; jobctl --help lists them")
        )
    args = command_parser(top.command).parse_args(top.args)
    args.command = top.command
    args.socket = getattr(args, "socket", None) or top.socket
    args.json = bool(getattr(args, "json", False) or top.json)
    args.version = False
    return args


COMMANDS = {
    "status": cmd_status,
    "list": cmd_list,
    "show": cmd_show,
    "run": cmd_run,
    "cancel": cmd_cancel,
    "runs": cmd_runs,
    "logs": cmd_logs,
    "pause": cmd_pause,
    "resume": cmd_resume,
    "reload": cmd_reload,
    "why": cmd_why,
    "metrics": cmd_metrics,
}


def _fail(
    message: str, code: int, *, as_json: bool = False, rpc_code: int | None = None, data: Any = None
) -> int:
    """Report an error: a line on stderr, or under ``--json`` a JSON object on stdout
    (``{"error": {"message", "exit_code", "code", "data"}}``); the exit code is the same."""
    sys.stdout.flush()
    if as_json:
        error: dict[str, Any] = {"message": message, "exit_code": code, "code": rpc_code}
        if data is not None:
            error["data"] = data
        sys.stdout.write(json.dumps({"error": error}, indent=2) + "\n")
    else:
        sys.stderr.write(f"jobctl: {message}\n")
    return code


def _broken_pipe() -> int:
    # stdout went away (``jobctl logs x | head``): leave quietly, with the status cat has
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    as_json = "--json" in argv[: argv.index("--")] if "--" in argv else "--json" in argv
    try:
        args = parse_args(argv)
    except _ParseError as exc:
        if as_json:
            return _fail(exc.message, EXIT_USAGE, as_json=True)
        sys.stderr.write(exc.usage + exc.message + "\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help (0)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.version:
        from jobd import __version__

        if args.json:
            sys.stdout.write(json.dumps({"version": __version__}) + "\n")
        else:
            sys.stdout.write(f"jobctl {__version__}\n")
        return EXIT_OK
    out = Out(args.json)
    session: Session | None = None
    try:
        path, source = resolve_socket(args.socket, os.environ)
        session = Session(path, source, timeout=120.0)
        return COMMANDS[args.command](session, args, out)
    except Usage as exc:
        return _fail(str(exc), EXIT_USAGE, as_json=args.json)
    except Unreachable as exc:
        return _fail(str(exc), EXIT_UNREACHABLE, as_json=args.json)
    except p.RPCError as exc:
        code = EXIT_USAGE if exc.code in _REFUSALS else EXIT_FAILED
        return _fail(exc.message, code, as_json=args.json, rpc_code=exc.code, data=exc.data)
    except KeyboardInterrupt:
        if args.command in ("run", "logs"):
            sys.stderr.write("\njobctl: interrupted; the run goes on (jobctl cancel stops it)\n")
        return 130
    except BrokenPipeError:
        return _broken_pipe()
    finally:
        if session is not None:
            session.close()


if __name__ == "__main__":
    raise SystemExit(main())
