"""The worker side of one remote run: claim it once, hold its lease, run it as a local run
would be run, stream its output back, and report its result unless the daemon fenced it.

Called by the ``jobd.run`` Celery task in a pool process. The command runs under the
guard (``GUARD``) in its own process group: SIGKILL of the pool process, or of the
worker's whole process group, takes the command down with it. A worker that cannot renew
its lease (fenced, or the broker unreachable for half the lease) stops the command, so
it never runs beside the copy the daemon starts once the lease has lapsed.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import redis.exceptions

from jobd.config.model import CeleryConfig
from jobd.executors.abc import Cancel, ProcessResult, ProcessSpec
from jobd.executors.local import LocalExecutor
from jobd.remote import protocol as p
from jobd.remote.broker import async_client

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger("jobd.remote")

GUARD = r"""[ "$PPID" = "$1" ] || kill -KILL 0
shift
trap 'kill -KILL 0' USR2
"$@" &
pid=$!
trap '' TERM INT HUP
while :; do
  wait "$pid"
  st=$?
  kill -0 "$pid" 2>/dev/null || break
done
if [ "$st" -gt 128 ]; then
  trap - TERM INT HUP
  kill -$((st - 128)) $$
fi
exit "$st"
"""
"""The leader of a remote run's process group, between the worker and the command. It gets
SIGUSR2 when the pool process that started it dies (``setpriv --pdeathsig``, i.e.
``PR_SET_PDEATHSIG``, which survives exec) and then SIGKILLs the whole group; it ignores the
SIGTERM that stops a run (the command, in the same group, gets it) and passes the command's
exit on. Arguments: the worker's pid, then the command."""
TAIL_EVERY = 0.05  # seconds between reads of the output file
CHUNK = 64 * 1024
SETPRIV = shutil.which("setpriv")  # util-linux
REPORT_FOR = 120.0  # seconds to keep trying to claim or report while the broker is away
AWAY = (OSError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
"""What a broker that is away (restarting, unreachable) raises."""


def who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(slots=True)
class _State:
    stop_reason: str | None = None  # why the worker stopped the command itself
    fenced: bool = False


def run_payload(payload: object, signature: object, cfg: CeleryConfig) -> None:
    """Verify, then run one task's payload; raises ``PayloadRefused`` for a bad one."""
    spec = p.RemoteSpec.from_json(p.verify(cfg.signing_key, payload, signature))
    anyio.run(_run, spec, cfg)


async def _run(spec: p.RemoteSpec, cfg: CeleryConfig) -> None:
    r = async_client(cfg)
    try:
        await _claimed_run(r, spec, cfg)
    finally:
        await r.aclose()


async def _claimed_run(r: redis.asyncio.Redis, spec: p.RemoteSpec, cfg: CeleryConfig) -> None:
    keys, tid = p.Keys.of(spec.instance), spec.tid
    token = uuid.uuid4().hex
    lease_ms = int(spec.lease * 1000)
    deadline = time.monotonic() + REPORT_FOR
    while True:
        try:
            claimed = await r.eval(
                p.CLAIM,
                3,
                keys.claim(tid),
                keys.lease(tid),
                keys.out(tid),
                token,
                lease_ms,
                who(),
                p.KEEP,
            )
            break
        except AWAY:  # the broker restarting: the message is ours until acked
            if time.monotonic() > deadline:
                raise
            await anyio.sleep(0.5)
    if not claimed:
        log.info("%s: already claimed or fenced: not run again", tid)
        return
    log.info("%s: claimed (run %d attempt %d)", tid, spec.run_id, spec.attempt)
    state = _State()
    with tempfile.TemporaryDirectory(prefix="jobd-remote-") as tmp:
        logfile, outfile = Path(tmp) / "log", Path(tmp) / "out"
        logfile.touch()
        cancel = Cancel()
        pspec = _process_spec(spec, logfile, outfile)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_keep_lease, r, keys, spec, token, lease_ms, cancel, state)
            tail = _Tail(r, keys.out(tid), logfile)
            tg.start_soon(tail.loop)
            result = await LocalExecutor().run(pspec, cancel=cancel)
            tg.cancel_scope.cancel()
        await tail.once()
        outputs = _read_outputs(outfile)
    if state.fenced:
        log.warning(
            "%s: the daemon fenced this attempt (%s); its result is dropped", tid, state.stop_reason
        )
        return
    rr = _remote_result(result, state, outputs)
    await _report(r, keys, tid, token, rr)


def _process_spec(spec: p.RemoteSpec, logfile: Path, outfile: Path) -> ProcessSpec:
    argv = tuple(sys.executable if a == p.WORKER_PYTHON else a for a in spec.argv)
    env = {**os.environ, **spec.env, "JOBD_OUTPUT": str(outfile)}
    paths = spec.extra.get("JOBD_CHANGED_PATHS_FILE")
    if isinstance(paths, str):  # the daemon's file, copied here
        local = outfile.with_name("paths")
        local.write_bytes(base64.b64decode(paths))
        env["JOBD_CHANGED_PATHS_FILE"] = str(local)
    else:
        env.pop("JOBD_CHANGED_PATHS_FILE", None)
    for name in ("JOBD_CONFIG",):  # the worker's own settings are not the job's
        if name not in spec.env:
            env.pop(name, None)
    cwd = Path(spec.cwd)
    if not cwd.is_dir():
        fallback = Path.cwd()
        with logfile.open("a") as f:
            f.write(
                f"[jobd: working directory {spec.cwd} does not exist on {who()}; "
                f"running in {fallback}]\n"
            )
        cwd = fallback
    guard = (
        SETPRIV or "setpriv",
        "--pdeathsig",
        "USR2",
        "--",
        "/bin/sh",
        "-c",
        GUARD,
        "jobd-guard",
        str(os.getpid()),
        *argv,
    )
    return ProcessSpec(
        argv=guard,
        env=env,
        cwd=cwd,
        log_path=logfile,
        log_max_bytes=spec.log_max_bytes,
        timeout=spec.timeout,
        kill_grace=spec.kill_grace,
        user=spec.user,
    )


def _remote_result(result: ProcessResult, state: _State, outputs: dict[str, str]) -> p.RemoteResult:
    error = result.error
    if state.stop_reason is not None and result.cancelled:
        error = f"stopped by the worker: {state.stop_reason}"
    return p.RemoteResult(
        exit_code=result.exit_code,
        signal=result.signal,
        timed_out=result.timed_out,
        cancelled=result.cancelled and state.stop_reason is None,
        error=error,
        outputs=outputs,
        worker=who(),
    )


async def _keep_lease(
    r: redis.asyncio.Redis,
    keys: p.Keys,
    spec: p.RemoteSpec,
    token: str,
    lease_ms: int,
    cancel: Cancel,
    state: _State,
) -> None:
    """Renew the lease every third of it; wait for a cancel in between (BLPOP)."""
    tid = spec.tid
    interval = spec.lease / 3
    last_ok = time.monotonic()
    while True:
        try:
            popped: Any = await r.blpop([keys.cancel(tid)], timeout=interval)
            if popped is not None and not cancel.is_set():
                log.info("%s: %s by the daemon", tid, popped[1].decode(errors="replace"))
                cancel.set()
            ok = await r.eval(p.RENEW, 2, keys.claim(tid), keys.lease(tid), token, lease_ms)
        except Exception as exc:  # the broker is away: the lease runs down meanwhile
            if time.monotonic() - last_ok > spec.lease / 2 and not cancel.is_set():
                state.stop_reason = f"lease not renewed for {spec.lease / 2:g}s ({exc})"
                log.error("%s: %s: stopping the command", tid, state.stop_reason)
                cancel.set()
            await anyio.sleep(min(0.5, interval))
            continue
        if not ok:
            state.fenced = True
            state.stop_reason = state.stop_reason or "lost its lease"
            log.error("%s: lost its lease (fenced by the daemon): stopping the command", tid)
            cancel.set()
            return
        last_ok = time.monotonic()


class _Tail:
    """Sends what the run's log file gains to its output stream."""

    def __init__(self, r: redis.asyncio.Redis, stream: str, path: Path) -> None:
        self.r, self.stream, self.path = r, stream, path
        self.offset = 0

    async def once(self) -> None:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            while chunk := f.read(CHUNK):
                for _ in range(40):
                    try:
                        await self.r.xadd(self.stream, {"k": "out", "d": chunk})
                        break
                    except Exception:  # the broker restarting: try again shortly
                        await anyio.sleep(0.25)
                self.offset += len(chunk)

    async def loop(self) -> None:
        while True:
            await self.once()
            await anyio.sleep(TAIL_EVERY)


def _read_outputs(path: Path) -> dict[str, str]:
    from jobd.supervisor.runner import read_outputs

    return read_outputs(path)


async def _report(
    r: redis.asyncio.Redis, keys: p.Keys, tid: str, token: str, rr: p.RemoteResult
) -> None:
    deadline = time.monotonic() + REPORT_FOR
    while True:
        try:
            ok = await r.eval(
                p.RESULT,
                5,
                keys.claim(tid),
                keys.results,
                keys.done(tid),
                keys.out(tid),
                keys.lease(tid),
                token,
                tid,
                rr.to_json(),
                p.KEEP,
            )
        except AWAY as exc:
            if time.monotonic() > deadline:
                log.error(
                    "%s: cannot report its result (%s); the daemon re-runs it once "
                    "its lease lapses",
                    tid,
                    exc,
                )
                return
            await anyio.sleep(0.5)
            continue
        if ok:
            log.info("%s: reported: exit %s", tid, rr.exit_code)
        else:
            log.warning("%s: result refused: the daemon fenced this attempt", tid)
        return
