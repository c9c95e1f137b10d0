"""The Redis protocol between the daemon and its Celery workers: keys, payloads, signatures and
the scripts that make a claim, a lease, a fence and a result atomic.

Celery only carries the message (``jobd.run(payload, signature)``) to a worker of the job's
queue. Everything that keeps the promise lives in Redis, under ``jobd:<instance>:``:

``claim:<tid>``   the worker's token, set once (``SET NX``); ``fenced`` when the daemon gave
                  up on the attempt. A redelivered message finds it taken and does nothing.
``lease:<tid>``   the token again, with a TTL the worker renews every third of the lease.
``done:<tid>``    the id of the attempt's entry in ``results``, set with it.
``cancel:<tid>``  a list the worker blocks on: the daemon pushes the reason there.
``out:<tid>``     a stream: ``claim``, then output chunks, then ``end``.
``results``       a stream of results read by the daemon's consumer group and acknowledged
                  only once the run's end is in the journal.
``lost:<run>``    how many workers were lost under the run.

A task id is ``jobd-<instance>-<run>-<attempt>-<step>``: from the journal alone the daemon
finds every task of a run again. ``step`` counts the processes of one attempt (stages,
stage retries).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from jobd._exceptions import JobdError

TASK_NAME: Final = "jobd.run"
WORKER_PYTHON: Final = "@jobd-worker-python@"
"""Stands for the worker's own interpreter in a payload's argv (entrypoint and script jobs
without ``python``): the daemon's interpreter path means nothing on another host."""
KEEP: Final = 7 * 86400  # seconds a claim outlives its run: redeliveries stay refused
PAYLOAD_VERSION: Final = 1
GROUP: Final = "jobd"
CONSUMER: Final = "daemon"


class PayloadRefused(JobdError, ValueError):
    """A task payload that is unsigned, badly signed or malformed: never run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskKey:
    instance: str
    run_id: int
    attempt: int
    step: int = 0

    @property
    def tid(self) -> str:
        return f"jobd-{self.instance}-{self.run_id}-{self.attempt}-{self.step}"


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis key of one instance's protocol."""

    prefix: str  # "jobd:<instance>"

    @classmethod
    def of(cls, instance: str) -> Keys:
        return cls(f"jobd:{instance}")

    def claim(self, tid: str) -> str:
        return f"{self.prefix}:claim:{tid}"

    def lease(self, tid: str) -> str:
        return f"{self.prefix}:lease:{tid}"

    def done(self, tid: str) -> str:
        return f"{self.prefix}:done:{tid}"

    def cancel(self, tid: str) -> str:
        return f"{self.prefix}:cancel:{tid}"

    def out(self, tid: str) -> str:
        return f"{self.prefix}:out:{tid}"

    def lost(self, run_id: int) -> str:
        return f"{self.prefix}:lost:{run_id}"

    @property
    def results(self) -> str:
        return f"{self.prefix}:results"


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteSpec:
    """One process to run on a worker, as the daemon rendered it."""

    tid: str
    instance: str
    run_id: int
    attempt: int
    argv: tuple[str, ...]
    env: Mapping[str, str]  # the job's variables and JOBD_*; the worker's own come first
    cwd: str
    timeout: float | None
    kill_grace: float
    log_max_bytes: int
    user: str | None
    lease: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": PAYLOAD_VERSION,
                "tid": self.tid,
                "instance": self.instance,
                "run_id": self.run_id,
                "attempt": self.attempt,
                "argv": list(self.argv),
                "env": dict(self.env),
                "cwd": self.cwd,
                "timeout": self.timeout,
                "kill_grace": self.kill_grace,
                "log_max_bytes": self.log_max_bytes,
                "user": self.user,
                "lease": self.lease,
                "extra": dict(self.extra),
            },
            separators=(",", ":"),
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> RemoteSpec:
        try:
            d = json.loads(text)
            if d.get("v") != PAYLOAD_VERSION:
                raise PayloadRefused(
                    f"payload version {d.get('v')!r}, this worker reads {PAYLOAD_VERSION}"
                )
            spec = cls(
                tid=str(d["tid"]),
                instance=str(d["instance"]),
                run_id=int(d["run_id"]),
                attempt=int(d["attempt"]),
                argv=tuple(str(a) for a in d["argv"]),
                env={str(k): str(v) for k, v in d["env"].items()},
                cwd=str(d["cwd"]),
                timeout=None if d["timeout"] is None else float(d["timeout"]),
                kill_grace=float(d["kill_grace"]),
                log_max_bytes=int(d["log_max_bytes"]),
                user=None if d["user"] is None else str(d["user"]),
                lease=float(d["lease"]),
                extra=dict(d.get("extra") or {}),
            )
        except PayloadRefused:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PayloadRefused(f"malformed payload: {exc!r}") from None
        expected = TaskKey(instance=spec.instance, run_id=spec.run_id, attempt=spec.attempt)
        if not spec.tid.startswith(expected.tid.rsplit("-", 1)[0] + "-"):
            raise PayloadRefused(f"task id {spec.tid!r} does not match its run")
        return spec


def sign(key: bytes, payload: str) -> str:
    """HMAC-SHA256 of the payload, hex."""
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def verify(key: bytes, payload: object, signature: object) -> str:
    """The payload when ``signature`` is its HMAC under ``key``; else ``PayloadRefused``."""
    if not isinstance(payload, str) or not isinstance(signature, str) or not signature:
        raise PayloadRefused("unsigned payload")
    if not hmac.compare_digest(sign(key, payload), signature):
        raise PayloadRefused("bad signature (not signed with this worker's signing key)")
    return payload


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteResult:
    """How a remote process ended, as the worker reports it."""

    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)
    worker: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "exit_code": self.exit_code,
                "signal": self.signal,
                "timed_out": self.timed_out,
                "cancelled": self.cancelled,
                "error": self.error,
                "outputs": dict(self.outputs),
                "worker": self.worker,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RemoteResult:
        d = json.loads(text)
        return cls(
            exit_code=d["exit_code"],
            signal=d["signal"],
            timed_out=bool(d["timed_out"]),
            cancelled=bool(d["cancelled"]),
            error=d["error"],
            outputs={str(k): str(v) for k, v in (d.get("outputs") or {}).items()},
            worker=str(d.get("worker", "")),
        )


# --- scripts (atomic on the server) -------------------------------------------------------

CLAIM: Final = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[4]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  redis.call('XADD', KEYS[3], '*', 'k', 'claim', 'd', ARGV[3])
  return 1
end
return 0
"""
"""KEYS claim, lease, out; ARGV token, lease ms, who, keep s. 1: claimed; 0: taken before."""

RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
"""KEYS claim, lease; ARGV token, lease ms. 0: fenced, stop the command."""

RESULT: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local id = redis.call('XADD', KEYS[2], '*', 'tid', ARGV[2], 'r', ARGV[3])
redis.call('SET', KEYS[3], id, 'EX', ARGV[4])
redis.call('XADD', KEYS[4], '*', 'k', 'end', 'd', '')
redis.call('DEL', KEYS[5])
return 1
"""
"""KEYS claim, results, done, out, lease; ARGV token, tid, result json, keep s.
0: the claim was fenced, the result is refused."""

FENCE: Final = """
local c = redis.call('GET', KEYS[1])
if c == 'fenced' then return 'fenced' end
if c then
  if redis.call('EXISTS', KEYS[3]) == 1 then return 'done' end
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'alive' end
end
redis.call('SET', KEYS[1], 'fenced', 'EX', ARGV[1])
return c and 'lapsed' or 'unclaimed'
"""
"""KEYS claim, lease, done; ARGV keep s. Gives up on an attempt unless it lives or has ended:
``unclaimed``/``lapsed`` (fenced now), ``fenced`` (before), ``alive`` or ``done``."""
