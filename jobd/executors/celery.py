"""The Celery executor: the daemon's side of a remote run (``executor = "celery"``).

Per process of an attempt: publish ``jobd.run`` with a signed payload and a task id from the
journal (``jobd.remote.protocol``), follow the task's output stream into the run's local log,
watch its lease, and take its result from the results stream. Every Redis call is made with
``redis.asyncio``; the one synchronous call, kombu's publish, runs in a worker thread, so
the event loop never blocks on the broker.

Results stay pending in the consumer group until ``settle()``, which the runner calls once
the run's end is in the journal. After a daemon crash, ``adopt()`` makes the first process
of the journaled attempt attach to its task again instead of publishing it: a result that
is there is taken, a live lease is followed, and an attempt never claimed or whose lease
lapsed is fenced and raises ``WorkerLost`` so the runner re-runs it as a recovery.
"""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from jobd._exceptions import JobdError
from jobd.config.model import DEFAULT_QUEUE, CeleryConfig
from jobd.executors._logsink import LogSink
from jobd.executors.abc import Cancel, Executor, ProcessResult, ProcessSpec, RunRef, StartedCallback
from jobd.remote import protocol as p
from jobd.remote.broker import async_client, make_app

if TYPE_CHECKING:
    import redis.asyncio
    from celery import Celery

log = logging.getLogger("jobd.executors.celery")

PATHS_FILE = "JOBD_CHANGED_PATHS_FILE"
PUBLISHERS = 4  # threads publishing at once
RETRY_PAUSE = 0.25  # seconds between tries while the broker is away


class WorkerLost(JobdError, RuntimeError):
    """The attempt was given up (never claimed, or its worker's lease lapsed) and fenced:
    the runner re-runs it as a recovery. ``counted``: a lost worker, against ``max_lost``."""

    def __init__(self, message: str, *, counted: bool) -> None:
        self.counted = counted
        super().__init__(message)


class CeleryExecutor(Executor):
    """Runs processes on Celery workers; see the module docstring and docs/celery.md."""

    def __init__(self, cfg: CeleryConfig, *, instance: str) -> None:
        self.cfg = cfg
        self.instance = instance
        self.keys = p.Keys.of(instance)
        self._redis: redis.asyncio.Redis | None = None
        self._app: Celery | None = None
        self._limiter = anyio.CapacityLimiter(PUBLISHERS)
        self._steps: dict[tuple[int, int], int] = {}
        self._adopting: set[tuple[int, int]] = set()
        self._group_made = False
        # Runs starting together must not each make the client: two threads importing
        # celery at once can see it half-initialized ("cannot import name 'Celery'").
        self._making = anyio.Lock()

    @property
    def redis(self) -> redis.asyncio.Redis:
        assert self._redis is not None, "await _connect() first"
        return self._redis

    async def _connect(self) -> None:
        # made in a thread: the first use imports redis (and celery), far too long a pause
        # for the event loop
        async with self._making:
            if self._redis is None:
                self._redis = await anyio.to_thread.run_sync(_client_and_errors, self.cfg)

    async def _celery(self) -> Celery:
        async with self._making:
            if self._app is None:
                self._app = await anyio.to_thread.run_sync(make_app, self.cfg)
            return self._app

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._app is not None:
            app, self._app = self._app, None
            await anyio.to_thread.run_sync(app.close)

    # --- the Executor contract ------------------------------------------------------------

    async def run(
        self,
        spec: ProcessSpec,
        *,
        on_started: StartedCallback | None = None,
        cancel: Cancel | None = None,
    ) -> ProcessResult:
        """Run ``spec`` on a worker of the default queue (see ``run_remote``)."""
        return await self.run_remote(spec, queue=DEFAULT_QUEUE, cancel=cancel)

    async def find_leftovers(self, ref: RunRef) -> list[str]:
        """None: a remote run is adopted at the next start (``adopt``), or fenced and re-run
        by ``run_remote``, never stopped from here."""
        return []

    async def stop_leftovers(self, ids: Sequence[str], grace: float) -> list[str]:
        return list(ids)

    def adopt(self, run_id: int, attempt: int) -> None:
        """The journal says this attempt was running when the daemon stopped: attach to it."""
        self._adopting.add((run_id, attempt))

    async def run_remote(
        self, spec: ProcessSpec, *, queue: str, cancel: Cancel | None = None
    ) -> ProcessResult:
        """Run ``spec`` on a worker of ``queue``; its output goes to ``spec.log_path``.

        Cancel (or the worker's own timeout) stops the command on the worker. A cancelled
        calling scope (daemon shutdown) leaves the task running for the next start to adopt.
        Raises ``WorkerLost`` when the attempt must be re-run as a recovery."""
        await self._connect()
        run_id, attempt = int(spec.env["JOBD_RUN_ID"]), int(spec.env["JOBD_ATTEMPT"])
        step = self._steps.get((run_id, attempt), 0)
        self._steps[(run_id, attempt)] = step + 1
        key = p.TaskKey(instance=self.instance, run_id=run_id, attempt=attempt, step=step)
        sink = LogSink(spec.log_path, spec.log_max_bytes, f"run {run_id} ({key.tid})")
        try:
            if (run_id, attempt) in self._adopting:
                found = await self._probe(key)
                if found is not None:
                    self._adopting.discard((run_id, attempt))
                    await self._retry(self.redis.sadd, self._tids_key(run_id), key.tid)
                    return await self._follow(
                        key, spec, sink, queue, cancel, claimed=True, adopted=found
                    )
            await self._publish(key, spec, queue)
            return await self._follow(key, spec, sink, queue, cancel, claimed=False, adopted=None)
        finally:
            sink.close()

    # --- steps ----------------------------------------------------------------------------

    async def _probe(self, key: p.TaskKey) -> str | None:
        """An adopted attempt's process: 'done' or 'alive' to follow it, None to publish it
        (a later step of an attempt whose earlier steps ended); else ``WorkerLost``."""
        tid = key.tid
        if key.step > 0 and not await self._retry(self.redis.exists, self.keys.claim(tid)):
            return None
        state = await self._fence(tid)
        if state in ("done", "alive"):
            if state == "done":  # an earlier step: replayed, not adopted yet
                self._adopting.add((key.run_id, key.attempt))
            return state
        self._adopting.discard((key.run_id, key.attempt))
        if state == "lapsed":
            await self._lost(key, "its worker's lease lapsed while the daemon was down")
        raise WorkerLost(f"no worker had taken it when the daemon stopped ({state})", counted=False)

    async def _fence(self, tid: str) -> str:
        k = self.keys
        raw = await self._retry(
            self.redis.eval, p.FENCE, 3, k.claim(tid), k.lease(tid), k.done(tid), p.KEEP
        )
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def _lost(self, key: p.TaskKey, why: str) -> None:
        n = int(await self._retry(self.redis.incr, self.keys.lost(key.run_id)))
        if n > self.cfg.max_lost:
            raise _GiveUp(
                f"lost its worker {n} times (max_lost = {self.cfg.max_lost}); last time: {why}"
            )
        raise WorkerLost(
            f"worker lost: {why} (lost {n} of at most {self.cfg.max_lost})", counted=True
        )

    async def _publish(self, key: p.TaskKey, spec: ProcessSpec, queue: str) -> None:
        extra: dict[str, Any] = {}
        paths = spec.env.get(PATHS_FILE)
        if paths:  # a daemon-side file: its bytes travel, the worker writes its own copy
            try:
                data = await anyio.Path(paths).read_bytes()
                extra[PATHS_FILE] = base64.b64encode(data).decode()
            except OSError as exc:
                log.warning("run %d: cannot read %s: %s", key.run_id, paths, exc)
        rspec = p.RemoteSpec(
            tid=key.tid,
            instance=self.instance,
            run_id=key.run_id,
            attempt=key.attempt,
            argv=spec.argv,
            env=spec.env,
            cwd=str(spec.cwd),
            timeout=spec.timeout,
            kill_grace=spec.kill_grace,
            log_max_bytes=spec.log_max_bytes,
            user=spec.user,
            lease=self.cfg.lease,
            extra=extra,
        )
        payload = rspec.to_json()
        sig = p.sign(self.cfg.signing_key, payload)
        app = await self._celery()
        send = functools.partial(
            app.send_task,
            p.TASK_NAME,
            args=(payload, sig),
            task_id=key.tid,
            queue=queue,
            retry=False,
        )
        async with anyio.create_task_group() as tg:  # two round trips at once
            tg.start_soon(self._retry, self.redis.sadd, self._tids_key(key.run_id), key.tid)
            await self._retry(anyio.to_thread.run_sync, send, limiter=self._limiter)

    async def _follow(
        self,
        key: p.TaskKey,
        spec: ProcessSpec,
        sink: LogSink,
        queue: str,
        cancel: Cancel | None,
        *,
        claimed: bool,
        adopted: str | None,
    ) -> ProcessResult:
        r, k, tid = self.redis, self.keys, key.tid
        last = "0-0"
        if adopted is not None:
            pos = await self._retry(r.get, self._pos_key(tid))
            last = pos.decode() if pos else "0-0"
            if adopted == "alive":
                sink.note(f"daemon restarted: attempt {key.attempt} adopted from its worker")
        interval = self.cfg.lease / 3
        claim_deadline = anyio.current_time() + self.cfg.claim_timeout
        cancel_sent = away = False
        check_at = anyio.current_time() + interval  # the next look at the lease
        while True:
            block = max(
                0.001,
                (check_at if claimed else min(check_at, claim_deadline)) - anyio.current_time(),
            )
            try:
                got = await self._read(k.out(tid), last, block, cancel, cancel_sent)
            except _broker_errors() as exc:
                if not away:
                    log.warning("%s: broker unreachable (%s); trying again", tid, exc)
                away = True
                await anyio.sleep(RETRY_PAUSE)
                continue
            away = False
            ended = fed = False
            for entry_id, fields in got:
                last = entry_id.decode()
                kind = fields.get(b"k")
                if kind == b"out" and fields.get(b"d"):
                    sink.feed(fields[b"d"])
                    fed = True
                elif kind == b"claim":
                    claimed = True
                    if (
                        spec.env.get("JOBD_STAGE") is None
                        and key.step == 0
                        and log.isEnabledFor(logging.DEBUG)
                    ):
                        log.debug("%s: claimed by %s", tid, fields.get(b"d", b"").decode())
                elif kind == b"end":
                    ended = True
            if fed and not ended:
                # where the log is, for an adoption after a crash (a write on the broker:
                # skipped at the end, where the result is journaled at once)
                await self._retry(r.set, self._pos_key(tid), last, ex=p.KEEP)
            if ended:
                return await self._result(tid, spec)
            if cancel is not None and cancel.is_set() and not cancel_sent:
                if not claimed and await self._fence(tid) in ("unclaimed", "fenced"):
                    sink.note("cancelled before a worker took it")
                    return ProcessResult(exit_code=None, cancelled=True)
                await self._retry(r.lpush, k.cancel(tid), "cancelled")
                cancel_sent = True
                continue
            now = anyio.current_time()
            if not claimed:
                if now < claim_deadline:
                    continue
                state = await self._fence(tid)
                if state in ("unclaimed", "fenced"):
                    why = (
                        f"no worker of queue '{queue}' took it within "
                        f"{self.cfg.claim_timeout:g}s (claim_timeout)"
                    )
                    sink.note(why)
                    return ProcessResult(exit_code=None, error=why)
                claimed = True
                continue
            if now < check_at:  # output keeps coming: the lease is still looked at in time
                continue
            check_at = now + interval
            if await self._retry(r.exists, k.lease(tid)):
                continue
            state = await self._fence(tid)
            if state == "lapsed":
                sink.note(
                    f"worker lost: its lease lapsed ({self.cfg.lease:g}s); attempt "
                    f"{key.attempt} fenced"
                )
                try:
                    await self._lost(key, f"the lease of {tid} lapsed")
                except _GiveUp as exc:
                    return ProcessResult(exit_code=None, error=str(exc))

    async def _read(
        self, stream: str, last: str, block: float, cancel: Cancel | None, cancel_sent: bool
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Entries of ``stream`` after ``last``, waiting up to ``block`` seconds (or until
        ``cancel`` is set, when it was not yet passed on)."""
        ms = max(1, int(block * 1000))
        out: list[tuple[bytes, dict[bytes, bytes]]] = []

        failed: list[Exception] = []

        async def read() -> None:
            try:
                res: Any = await self.redis.xread({stream: last}, count=256, block=ms)
            except _broker_errors() as exc:  # raised below, not as an exception group
                failed.append(exc)
                return
            for _name, entries in res or ():
                out.extend(entries)

        if cancel is None or cancel_sent or cancel.is_set():
            await read()
        else:
            async with anyio.create_task_group() as tg:

                async def watch() -> None:
                    await cancel.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                await read()
                tg.cancel_scope.cancel()
        if failed:
            raise failed[0]
        return out

    async def _result(self, tid: str, spec: ProcessSpec) -> ProcessResult:
        r = self.redis
        entry = await self._retry(r.get, self.keys.done(tid))
        found = await self._retry(r.xrange, self.keys.results, entry, entry) if entry else []
        if not found:
            return ProcessResult(
                exit_code=None, error=f"{tid}: its result is missing from the broker"
            )
        res = p.RemoteResult.from_json(found[0][1][b"r"])
        out = spec.env.get("JOBD_OUTPUT")
        if res.outputs and out:
            text = "".join(f"{k}={v}\n" for k, v in res.outputs.items())
            await anyio.Path(out).write_text(text)
        return ProcessResult(
            exit_code=res.exit_code,
            signal=res.signal,
            timed_out=res.timed_out,
            cancelled=res.cancelled,
            error=res.error,
        )

    # --- after the journal ----------------------------------------------------------------

    async def settle(self, run_id: int) -> None:
        """The run's end is journaled: acknowledge its results, drop its keys (claims stay,
        with their expiry, so late redeliveries are still refused)."""
        for key in [k for k in self._steps if k[0] == run_id]:
            del self._steps[key]
        self._adopting = {a for a in self._adopting if a[0] != run_id}
        try:
            with anyio.fail_after(30):
                await self._connect()
                await self._retry(self._settle, run_id)
        except TimeoutError:
            log.warning(
                "run %d: could not acknowledge its results (broker away); they stay pending in %s",
                run_id,
                self.keys.results,
            )

    async def _settle(self, run_id: int) -> None:
        r, k = self.redis, self.keys
        members: Any = await r.smembers(self._tids_key(run_id))
        tids = [t.decode() for t in members]
        if not tids:
            return
        await self._ensure_group()
        # take every delivered-to-no-one result into our pending list first: XACK only
        # acknowledges entries that were read through the group
        await r.xreadgroup(p.GROUP, p.CONSUMER, {k.results: ">"}, count=10_000)
        ids = [d for d in await r.mget([k.done(t) for t in tids]) if d]
        async with r.pipeline(transaction=False) as pipe:
            if ids:
                pipe.xack(k.results, p.GROUP, *ids)
                pipe.xdel(k.results, *ids)
            for t in tids:
                pipe.delete(k.out(t), k.done(t), self._pos_key(t), k.lease(t), k.cancel(t))
            pipe.delete(self._tids_key(run_id), k.lost(run_id))
            await pipe.execute()

    async def _ensure_group(self) -> None:
        if self._group_made:
            return
        import redis.exceptions

        try:
            await self.redis.xgroup_create(self.keys.results, p.GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_made = True

    def _tids_key(self, run_id: int) -> str:
        return f"{self.keys.prefix}:tids:{run_id}"

    def _pos_key(self, tid: str) -> str:
        return f"{self.keys.prefix}:pos:{tid}"

    async def _retry(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``await fn(...)``, tried again while the broker is unreachable (a restart)."""
        errors = _broker_errors()
        warned = False
        while True:
            try:
                return await fn(*args, **kwargs)
            except errors as exc:
                if not warned:
                    log.warning("broker unreachable (%s); trying again", exc)
                    warned = True
                await anyio.sleep(RETRY_PAUSE)


def _client_and_errors(cfg: CeleryConfig) -> redis.asyncio.Redis:
    _broker_errors()  # imports kombu too
    return async_client(cfg)


class _GiveUp(Exception):
    pass


@functools.cache
def _broker_errors() -> tuple[type[Exception], ...]:
    """What a broker that is away (restarting, unreachable) raises."""
    import redis.exceptions
    from kombu.exceptions import OperationalError

    return (
        OSError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        OperationalError,
    )


__all__ = ["CeleryExecutor", "WorkerLost"]
