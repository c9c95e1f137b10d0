"""The control socket's wire protocol: JSON-RPC 2.0, one JSON object per line (docs/protocol.md).

Pure framing, message builders, error codes and parameter checks, plus a small blocking
client. This module is on ``jobctl``'s import path, which must start instantly: it imports
neither asyncio nor anyio, and nothing costly (no typing, dataclasses or pathlib at run time).
"""

from __future__ import annotations

import _socket  # the socket module's C core: ``socket`` costs jobctl ~3 ms of enums
import json
import os
import time
from collections import deque
from collections.abc import Iterator, Mapping
from enum import Enum

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

JSONRPC = "2.0"
MAX_LINE = 1 << 20  # bytes in one request line, newline excluded
MAX_CHUNK = 1 << 20  # bytes of log in one ``logs`` answer or ``log`` notification

# JSON-RPC 2.0 standard codes
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# application codes
NOT_FOUND = 1  # no such job or run
REFUSED = 2  # the caller may not change anything
BAD_STATE = 3  # the daemon cannot do it now (journal unusable, ...)
CONFIG_INVALID = 4  # reload found the daemon config invalid

ERROR_NAMES: Mapping[int, str] = {
    PARSE_ERROR: "parse error",
    INVALID_REQUEST: "invalid request",
    METHOD_NOT_FOUND: "method not found",
    INVALID_PARAMS: "invalid params",
    INTERNAL_ERROR: "internal error",
    NOT_FOUND: "not found",
    REFUSED: "refused",
    BAD_STATE: "bad state",
    CONFIG_INVALID: "config invalid",
}

READ_METHODS = frozenset(
    {"status", "list", "show", "runs", "logs", "why", "subscribe", "unsubscribe", "metrics"}
)
CHANGE_METHODS = frozenset({"run", "cancel", "pause", "resume", "reload"})
METHODS = READ_METHODS | CHANGE_METHODS

RUN_STATES = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "skipped",
    "upstream_failed",
)
ENCODINGS = ("text", "base64")

RequestId = str | int | float | None


class RPCError(Exception):
    """A JSON-RPC error object, raised by the client and the server alike. (A wire-level
    error, not a ``JobdError``: importing ``jobd._exceptions`` would slow jobctl's start.)"""

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        request_id: RequestId = None,
        *,
        notification: bool = False,
    ) -> None:
        self.code = code
        self.message = message
        self.data = data
        self.request_id = request_id  # the id of the request it answers, when known
        self.notification = notification  # it is about a notification: never sent back
        super().__init__(message)

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


class Request:
    """A well-formed request; ``notification`` requests (no ``id``) get no response."""

    __slots__ = ("id", "method", "notification", "params")

    def __init__(
        self,
        *,
        method: str,
        params: Mapping[str, Any],
        id: RequestId = None,
        notification: bool = False,
    ) -> None:
        self.method = method
        self.params = params
        self.id = id
        self.notification = notification

    def __repr__(self) -> str:
        return (
            f"Request(method={self.method!r}, params={self.params!r}, id={self.id!r}, "
            f"notification={self.notification!r})"
        )


# --- framing ------------------------------------------------------------------------------


def _default(obj: Any) -> Any:
    if hasattr(obj, "isoformat"):  # datetime, date, time
        return obj.isoformat()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=str)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as a line: compact JSON, ASCII only (so any client decodes it), ``\\n``.
    Raises ``ValueError`` for a float JSON cannot hold (never ``Infinity`` on the wire)."""
    return (
        json.dumps(
            message, ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=_default
        ).encode("ascii")
        + b"\n"
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is too large for a JSON double")
    return value


def decode(line: bytes) -> Any:
    """Parse one line (strict UTF-8, strict JSON); raise ``RPCError(PARSE_ERROR)``."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RPCError(
            PARSE_ERROR, f"parse error: not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise RPCError(PARSE_ERROR, "parse error: JSON nested too deeply") from None
    except ValueError as exc:
        raise RPCError(PARSE_ERROR, f"parse error: {exc}") from None


# --- messages -----------------------------------------------------------------------------


def request(
    method: str, params: Mapping[str, Any] | None = None, request_id: RequestId = None
) -> dict[str, Any]:
    """A request; with ``request_id=None`` a notification (no response comes back)."""
    msg: dict[str, Any] = {"jsonrpc": JSONRPC, "method": method}
    if params:
        msg["params"] = dict(params)
    if request_id is not None:
        msg["id"] = request_id
    return msg


def response(request_id: RequestId, result: Any) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": request_id, "result": result}


def error(request_id: RequestId, code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "id": request_id, "error": RPCError(code, message, data).to_json()}


def notification(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": JSONRPC, "method": method, "params": dict(params)}


def _valid_id(value: Any) -> bool:
    return value is None or (isinstance(value, str | int | float) and not isinstance(value, bool))


def parse_request(obj: Any) -> Request:
    """Check a decoded message is a JSON-RPC 2.0 request; raise ``RPCError(INVALID_REQUEST)``
    (or ``METHOD_NOT_FOUND``) carrying the request's id when it could be read."""
    if isinstance(obj, list):
        raise RPCError(
            INVALID_REQUEST,
            "invalid request: batches (JSON arrays) are not supported; send one request per line",
        )
    if not isinstance(obj, dict):
        raise RPCError(INVALID_REQUEST, "invalid request: a request is a JSON object")
    rid = obj.get("id")
    rid = rid if _valid_id(rid) else None

    def bad(why: str) -> RPCError:
        return RPCError(INVALID_REQUEST, f"invalid request: {why}", request_id=rid)

    if not _valid_id(obj.get("id")):
        raise bad("id must be a string, a number or null")
    if obj.get("jsonrpc") != JSONRPC:
        raise bad('"jsonrpc" must be "2.0"')
    method = obj.get("method")
    if not isinstance(method, str):
        raise bad('"method" must be a string')
    quiet = "id" not in obj
    params = obj.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RPCError(
            INVALID_PARAMS,
            "invalid params: params must be an object (by name)",
            request_id=rid,
            notification=quiet,
        )
    if method not in METHODS:
        raise RPCError(
            METHOD_NOT_FOUND,
            f"method not found: {method!r}; methods: {', '.join(sorted(METHODS))}",
            request_id=rid,
            notification=quiet,
        )
    return Request(method=method, params=params, id=rid, notification=quiet)


# --- params -------------------------------------------------------------------------------

_MAX_RUN_ID = 2**63 - 1


class _P:
    """One param: its kind ("job", "int", "bool", "strmap", "choice"), default and bounds."""

    __slots__ = ("choices", "default", "high", "kind", "low")

    def __init__(
        self,
        kind: str,
        *,
        default: Any = None,
        low: int = 0,
        high: int = _MAX_RUN_ID,
        choices: tuple[str, ...] = (),
    ) -> None:
        self.kind = kind
        self.default = default
        self.low = low
        self.high = high
        self.choices = choices


_JOB = _P("job")
_RUN_ID = _P("int", low=1)
_SUB_ID = _P("int", low=1)

PARAMS: Mapping[str, Mapping[str, _P]] = {
    "status": {},
    "list": {},
    "reload": {},
    "metrics": {},
    "show": {"job_id": _JOB},
    "why": {"job_id": _JOB},
    "pause": {"job_id": _JOB},
    "resume": {"job_id": _JOB},
    "run": {"job_id": _JOB, "params": _P("strmap", default={})},
    "cancel": {"run_id": _RUN_ID, "job_id": _JOB},
    "runs": {
        "job_id": _JOB,
        "limit": _P("int", default=20, low=1, high=10_000),
        "state": _P("choice", choices=RUN_STATES),
    },
    "logs": {
        "run_id": _RUN_ID,
        "job_id": _JOB,
        "offset": _P("int", default=0),
        "max_bytes": _P("int", default=256 * 1024, low=0, high=MAX_CHUNK),
        "encoding": _P("choice", default="text", choices=ENCODINGS),
    },
    "subscribe": {
        "run_id": _RUN_ID,
        "job_id": _JOB,
        "logs": _P("bool", default=False),
        "offset": _P("int", default=0),
        "encoding": _P("choice", default="text", choices=ENCODINGS),
    },
    "unsubscribe": {"subscription": _SUB_ID},
}
_REQUIRED: Mapping[str, frozenset[str]] = {
    "show": frozenset({"job_id"}),
    "why": frozenset({"job_id"}),
    "pause": frozenset({"job_id"}),
    "resume": frozenset({"job_id"}),
    "run": frozenset({"job_id"}),
    "unsubscribe": frozenset({"subscription"}),
}
# exactly one of these
_ONE_OF: Mapping[str, tuple[str, str]] = {
    "cancel": ("run_id", "job_id"),
    "logs": ("run_id", "job_id"),
}


def _check(name: str, spec: _P, value: Any) -> Any:
    def bad(why: str) -> RPCError:
        return RPCError(INVALID_PARAMS, f"invalid params: {name}: {why}")

    if spec.kind == "job":
        if not isinstance(value, str) or not value:
            raise bad("must be a job id (a non-empty string)")
        if len(value) > 256:
            raise bad("too long for a job id")
        return value
    if spec.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad("must be an integer")
        if not spec.low <= value <= spec.high:
            raise bad(f"must be between {spec.low} and {spec.high}")
        return value
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise bad("must be true or false")
        return value
    if spec.kind == "strmap":
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise bad("must be an object of strings")
        return dict(value)
    if not isinstance(value, str) or value not in spec.choices:
        raise bad(f"must be one of {', '.join(spec.choices)}")
    return value


def check_params(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a known method's params; return them with defaults filled in (absent optional
    params and explicit nulls become the default). Raise ``RPCError(INVALID_PARAMS)``."""
    specs = PARAMS[method]
    unknown = sorted(set(params) - set(specs))
    if unknown:
        known = ", ".join(specs) or "none"
        raise RPCError(
            INVALID_PARAMS,
            f"invalid params: {method} takes no param {unknown[0]!r} (its params: {known})",
        )
    out: dict[str, Any] = {}
    for name, spec in specs.items():
        value = params.get(name)
        out[name] = spec.default if value is None else _check(name, spec, value)
    for name in _REQUIRED.get(method, ()):
        if out[name] is None:
            raise RPCError(INVALID_PARAMS, f"invalid params: {method} needs {name!r}")
    pair = _ONE_OF.get(method)
    if pair is not None and (out[pair[0]] is None) == (out[pair[1]] is None):
        raise RPCError(
            INVALID_PARAMS,
            f"invalid params: {method} needs exactly one of {pair[0]!r}, {pair[1]!r}",
        )
    if method == "subscribe" and out["logs"] and out["run_id"] is None and out["job_id"] is None:
        raise RPCError(
            INVALID_PARAMS, "invalid params: subscribe with logs needs 'run_id' or 'job_id'"
        )
    return out


def utf8_complete(data: bytes) -> int:
    """The length of ``data`` without a UTF-8 sequence cut short at its end, so a chunk of a log
    can be decoded without splitting a character (invalid bytes are left to the decoder)."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b & 0xC0 == 0x80:  # a continuation byte: look further back for the lead
            continue
        need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
        return n - back if back < need else n
    return n


# --- a blocking client --------------------------------------------------------------------


class Client:
    """A blocking client over the unix socket (what ``jobctl`` uses; no event loop needed).

    ``call`` sends a request and returns its result, raising ``RPCError`` for an error
    response; notifications read meanwhile are kept for ``notifications()``. Connection
    failures raise ``OSError`` (``ConnectionError`` when the daemon closes mid-answer).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float | None = 30.0) -> None:
        self.path = os.fspath(path)
        self._sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._connect(timeout)
        except BaseException:
            self._sock.close()
            raise
        self._buf = bytearray()
        self._next_id = 0
        self._pending: deque[dict[str, Any]] = deque()

    def _connect(self, timeout: float | None) -> None:
        """Connect, waiting while the daemon's listen backlog is full (a unix socket says
        EAGAIN at once then, where a TCP socket would wait)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.001
        while True:
            try:
                self._sock.connect(self.path)
                return
            except BlockingIOError:
                if deadline is not None and time.monotonic() + pause > deadline:
                    raise TimeoutError(
                        f"the daemon at {self.path} accepts no connection "
                        f"(its backlog stayed full for {timeout:g}s)"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def send(self, message: Mapping[str, Any]) -> None:
        self._sock.sendall(encode(message))

    def receive(self) -> dict[str, Any]:
        """The next message from the daemon; ``ConnectionError`` when it closed."""
        start = 0
        while (end := self._buf.find(b"\n", start)) < 0:
            start = len(self._buf)
            chunk = self._sock.recv(256 * 1024)
            if not chunk:
                raise ConnectionError(f"the daemon at {self.path} closed the connection")
            self._buf += chunk
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        msg = decode(line)
        if not isinstance(msg, dict):
            raise RPCError(INVALID_REQUEST, f"unexpected message from the daemon: {msg!r}")
        return msg

    def call(self, method: str, **params: Any) -> Any:
        self._next_id += 1
        rid = self._next_id
        self.send(request(method, {k: v for k, v in params.items() if v is not None}, rid))
        while True:
            msg = self.receive()
            if "id" not in msg:
                self._pending.append(msg)
                continue
            if msg.get("id") != rid and msg.get("id") is not None:
                continue
            if "error" in msg:
                err = msg["error"] if isinstance(msg["error"], dict) else {}
                raise RPCError(
                    int(err.get("code", INTERNAL_ERROR)),
                    str(err.get("message", "error")),
                    err.get("data"),
                    rid,
                )
            return msg.get("result")

    def notifications(self) -> Iterator[dict[str, Any]]:
        """Notifications (``method`` and ``params``) as they come, until the connection ends."""
        while True:
            msg = self._pending.popleft() if self._pending else self.receive()
            if "method" in msg and "id" not in msg:
                yield msg
