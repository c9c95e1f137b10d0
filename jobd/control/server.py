"""The control socket: JSON-RPC 2.0 over a unix stream socket, one JSON object per line.

``ControlServer`` translates requests to ``DaemonAPI`` calls (docs/protocol.md). Every client is
served in its own task; a client that misbehaves, stalls or vanishes only ends its own
connection, never the server.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import grp
import itertools
import logging
import math
import os
import pwd
import resource
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from jobd._enums import RunState
from jobd._exceptions import (
    ConfigError,
    JobdError,
    JobNotFound,
    NotAllowed,
    Problem,
    RunNotFound,
)
from jobd.config.model import DaemonConfig
from jobd.control import protocol as p
from jobd.control.api import DaemonAPI
from jobd.control.limits import Admission, Limits
from jobd.control.redact import hide_env
from jobd.journal.abc import RunRecord

log = logging.getLogger("jobd.control")

_RECEIVE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Peer:
    """The connecting process, as the kernel saw it at ``connect()`` (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> Peer:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Peer(pid, uid, gid)


def may_change(
    peer: Peer, *, daemon_uid: int, group_gid: int | None, user_groups: Callable[[int], set[int]]
) -> bool:
    """Root, the daemon's user and members of the socket's group (primary or supplementary,
    from the user database) may change things; ``user_groups(uid)`` lists a user's gids."""
    if peer.uid in (0, daemon_uid):
        return True
    if group_gid is None:
        return False
    return peer.gid == group_gid or group_gid in user_groups(peer.uid)


def user_groups(uid: int) -> set[int]:
    """Every gid the user belongs to (may block on NSS: call it in a worker thread)."""
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return set()
    try:
        return set(os.getgrouplist(pw.pw_name, pw.pw_gid))
    except OSError:
        return {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if pw.pw_name in g.gr_mem}


def error_for(exc: Exception) -> p.RPCError:
    """The JSON-RPC error a daemon exception becomes (docs/protocol.md, Errors)."""
    if isinstance(exc, p.RPCError):
        return exc
    if isinstance(exc, JobNotFound):
        data: dict[str, Any] = {"job_id": exc.job_id}
        if exc.near:
            data["did_you_mean"] = list(exc.near)
        return p.RPCError(p.NOT_FOUND, str(exc), data)
    if isinstance(exc, RunNotFound):
        rid = exc.run_id
        return p.RPCError(
            p.NOT_FOUND, str(exc), {"run_id": int(rid) if str(rid).isdigit() else rid}
        )
    if isinstance(exc, NotAllowed):
        return p.RPCError(p.REFUSED, str(exc), {"uid": exc.uid, "action": exc.action})
    if isinstance(exc, PermissionError):
        return p.RPCError(p.REFUSED, str(exc))
    if isinstance(exc, ConfigError):
        return p.RPCError(
            p.CONFIG_INVALID, str(exc), {"problems": [str(pr) for pr in exc.problems]}
        )
    if isinstance(exc, ValueError):
        return p.RPCError(p.INVALID_PARAMS, str(exc))
    if isinstance(exc, LookupError):
        return p.RPCError(p.NOT_FOUND, str(exc))
    if isinstance(exc, JobdError):
        return p.RPCError(p.BAD_STATE, str(exc))
    return p.RPCError(p.INTERNAL_ERROR, f"internal error: {type(exc).__name__}: {exc}")


def _read_log(path: Path, offset: int, max_bytes: int) -> tuple[bytes, int]:
    """Up to ``max_bytes`` of the file from ``offset``, and the file's size (0 if missing)."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset >= size or max_bytes <= 0:
                return b"", size
            f.seek(offset)
            return f.read(max_bytes), size
    except (FileNotFoundError, NotADirectoryError):
        return b"", 0


def _chunk(data: bytes, encoding: str, *, whole: bool) -> tuple[str, int]:
    """Encode a piece of log for JSON; returns the text and how many bytes it covers. Text cuts
    before a character split at the end unless ``whole`` (the log is complete)."""
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii"), len(data)
    n = len(data) if whole else p.utf8_complete(data)
    return data[:n].decode("utf-8", errors="replace"), n


class _Close(Exception):
    """End this connection (after an error was sent, or a timeout)."""


_DISCONNECTS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, _Close)
_RANK = {RunState.QUEUED: 0, RunState.RUNNING: 1}  # finished states rank 2


class ControlServer:
    """Serves the control socket of ``config.socket`` for ``api`` until cancelled.

    ``idle_timeout``: a client without a subscription is closed this long after its last
    complete request (or its connection): nothing else, blank lines included, keeps it open;
    ``request_timeout``: a request line must be complete within it once begun;
    ``write_timeout``: a client that does not read its answers within it is closed;
    ``limits``: connections and unfinished bytes (``jobd.control.limits``), fitted to the
    open-files limit.
    """

    def __init__(
        self,
        api: DaemonAPI,
        config: DaemonConfig,
        *,
        max_line: int = p.MAX_LINE,
        idle_timeout: float = 60.0,
        request_timeout: float = 10.0,
        write_timeout: float = 10.0,
        limits: Limits | None = None,
        backlog: int = 1024,
        poll_interval: float = 0.1,
    ) -> None:
        self.api = api
        self.config = config
        self.path = config.socket
        self.max_line = max_line
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.poll_interval = poll_interval
        self.backlog = backlog
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if nofile == resource.RLIM_INFINITY:
            nofile = 1 << 20
        self.admission = Admission((limits or Limits()).fitted(nofile))
        self._live: dict[int, _Connection] = {}
        self._conn_ids = itertools.count(1)
        self._scratch = bytearray(_RECEIVE)
        self._group_gid: int | None = None
        self._daemon_uid = os.geteuid()
        self._sub_ids = itertools.count(1)

    # --- lifecycle ------------------------------------------------------------------------

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Bind the socket, report started, serve clients; remove the socket file on exit."""
        sock, ident = await anyio.to_thread.run_sync(self._bind)
        try:
            listener = await anyio.abc.SocketListener.from_socket(sock)
        except BaseException:
            sock.close()
            await anyio.to_thread.run_sync(self._remove, ident)
            raise
        try:
            async with listener:
                log.info(
                    "control socket listening at %s (mode %04o, gid %s)",
                    self.path,
                    self.config.socket_mode,
                    self._group_gid,
                )
                async with anyio.create_task_group() as tg:
                    task_status.started()
                    await self._accept_loop(listener, tg)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._remove, ident)

    def _bind(self) -> tuple[socket.socket, tuple[int, int]]:
        """In a worker thread: the listening socket, with its mode and group set, and the
        file's identity (so only our own file is removed at the end)."""
        gid = self._prepare()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            st = self.path.lstat()
            ident = (st.st_dev, st.st_ino)
            try:
                os.chmod(self.path, self.config.socket_mode)
                if gid is not None:
                    self._chgrp(gid)
                self._group_gid = self.path.stat().st_gid
                sock.listen(self.backlog)
            except BaseException:
                self._remove(ident)
                raise
        except BaseException:
            sock.close()
            raise
        return sock, ident

    def _chgrp(self, gid: int) -> None:
        """Give the socket to ``socket_group``. A daemon user outside that group may not: the
        socket then keeps the daemon's group (fewer may connect, never more) and the log says
        how to fix it, instead of the daemon refusing to start."""
        try:
            os.chown(self.path, -1, gid)
        except PermissionError:
            try:
                user = pwd.getpwuid(os.geteuid()).pw_name
            except KeyError:
                user = str(os.geteuid())
            log.error(
                "control socket %s: user %r is not a member of socket_group %r, so the "
                "socket stays in group %s and members of %r cannot connect; add the "
                "user to the group (usermod -a -G %s %s) and restart jobd",
                self.path,
                user,
                self.config.socket_group,
                self.path.stat().st_gid,
                self.config.socket_group,
                self.config.socket_group,
                user,
            )

    def _prepare(self) -> int | None:
        """Make the parent dir, refuse a socket a live daemon answers on, remove a stale one;
        return the gid of ``socket_group``."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        gid: int | None = None
        if self.config.socket_group is not None:
            name = self.config.socket_group
            try:
                gid = grp.getgrnam(name).gr_gid
            except KeyError:
                if not name.isdigit():
                    raise ConfigError(
                        [
                            Problem(
                                self.config.path or "config",
                                f"no group {name!r}",
                                key="socket_group",
                            )
                        ]
                    ) from None
                gid = int(name)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return gid
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket; not replacing it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)  # stale: nobody listens
        else:
            raise OSError(errno.EADDRINUSE, f"another daemon is listening on {path}")
        finally:
            probe.close()
        return gid

    def _remove(self, ident: tuple[int, int]) -> None:
        """Remove the socket file, unless another process has replaced it since."""
        try:
            st = self.path.lstat()
            if (st.st_dev, st.st_ino) == ident:
                self.path.unlink()
        except OSError:
            pass

    async def _accept_loop(
        self, listener: anyio.abc.SocketListener, tg: anyio.abc.TaskGroup
    ) -> None:
        warned = -math.inf  # accept errors are logged at most once a minute
        delay = 0.01
        while True:
            try:
                stream = await listener.accept()
            except anyio.ClosedResourceError:
                raise  # the listener is closing
            except Exception as exc:  # EMFILE and friends: free what can be freed, wait
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                now = anyio.current_time()
                if now - warned >= 60:
                    warned = now
                    log.warning(
                        "control socket: accept failed (%s); closing idle clients and "
                        "retrying (not logged again for a minute)",
                        cause,
                    )
                victim = self.admission.oldest_idle()
                if victim is not None:
                    self._evict(victim)
                await anyio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.01
            self._admit(stream, tg)

    def _admit(self, stream: anyio.abc.SocketStream, tg: anyio.abc.TaskGroup) -> None:
        raw: socket.socket = stream.extra(anyio.abc.SocketAttribute.raw_socket)
        try:
            peer = peer_credentials(raw)
        except OSError:
            _close_now(raw)
            return
        privileged = peer.uid in (0, self._daemon_uid)
        verdict = self.admission.ask(peer.uid, privileged=privileged)
        if not verdict.admit:
            _close_now(raw, p.error(None, p.REFUSED, "too many connections; try again"))
            return
        if verdict.evict is not None:
            self._evict(verdict.evict)
        cid = next(self._conn_ids)
        self.admission.add(cid, peer.uid, privileged=privileged, now=anyio.current_time())
        conn = _Connection(self, stream, raw, peer, cid)
        self._live[cid] = conn
        tg.start_soon(self._serve_client, conn)

    def _evict(self, cid: int) -> None:
        """Close a connection to make room. Only idle ones are chosen, which wait to read: the
        shutdown wakes them (cheaper than cancelling, which a flood makes thousands of)."""
        self.admission.remove(cid)
        conn = self._live.pop(cid, None)
        if conn is not None:
            conn.evicted = True
            with contextlib.suppress(OSError):
                conn.raw.shutdown(socket.SHUT_RDWR)

    async def _serve_client(self, conn: _Connection) -> None:
        try:
            async with conn.stream:
                await conn.run()
        except Exception as exc:
            if _only_disconnects(exc):
                log.debug("control client gone: %r", exc)
            else:
                log.exception("control client failed")
        finally:
            # An exception's traceback may keep the connection in a reference cycle until the
            # next full collection: its buffer must not wait for that
            conn._buf = bytearray()
            self.admission.remove(conn.cid)
            self._live.pop(conn.cid, None)

    async def authorized(self, peer: Peer) -> bool:
        """May this peer call the changing methods? (The user database is read in a thread.)"""
        check = functools.partial(
            may_change,
            peer,
            daemon_uid=self._daemon_uid,
            group_gid=self._group_gid,
            user_groups=user_groups,
        )
        if peer.uid in (0, self._daemon_uid):
            return check()
        return await anyio.to_thread.run_sync(check)


def _close_now(raw: socket.socket, message: dict[str, Any] | None = None) -> None:
    """Close a connection that is not served, with a last line if it fits in the buffer."""
    if message is not None:
        with contextlib.suppress(OSError):
            raw.send(p.encode(message))
    raw.close()


def _only_disconnects(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_disconnects(e) for e in exc.exceptions)
    return isinstance(exc, (*_DISCONNECTS, OSError))


_Handler = Callable[[p.Request, dict[str, Any]], Awaitable[Any]]
_NO_RESPONSE = object()  # the handler answered itself (subscribe)


class _Connection:
    def __init__(
        self,
        server: ControlServer,
        stream: anyio.abc.SocketStream,
        raw: socket.socket,
        peer: Peer,
        cid: int,
    ) -> None:
        self.server = server
        self.cid = cid
        self.raw = raw
        self.evicted = False  # closed by the server for room: drop what was read
        self._admission = server.admission
        self._idle_deadline = anyio.current_time() + server.idle_timeout
        self.api = server.api
        self.stream = stream
        self.peer = peer
        self._raw = raw
        self._buf = bytearray()
        self._scanned = 0
        self._deadline: float | None = None
        self._eof = False
        self._lock = anyio.Lock()
        self._may_change: bool | None = None
        self._subs: dict[int, anyio.CancelScope] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._handlers: dict[str, _Handler] = {
            "status": self._status,
            "list": self._list,
            "show": self._show,
            "run": self._run,
            "cancel": self._cancel,
            "runs": self._runs,
            "logs": self._logs,
            "pause": self._pause,
            "resume": self._resume,
            "reload": self._reload,
            "why": self._why,
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "metrics": self._metrics,
        }

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            while (line := await self._read_line()) is not None:
                if line.strip():
                    now = anyio.current_time()
                    self._idle_deadline = now + self.server.idle_timeout
                    self._admission.request(self.cid, now)
                    self._admission.busy(self.cid, 1)
                    try:
                        await self._handle(line)
                    finally:
                        self._admission.busy(self.cid, -1)
                    # idle from the answer on: a slow answer does not eat the client's time
                    self._idle_deadline = anyio.current_time() + self.server.idle_timeout
            tg.cancel_scope.cancel()  # the client is done: so are its subscriptions

    # --- I/O ------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else p.encode(message)
        try:
            with anyio.fail_after(self.server.write_timeout):
                async with self._lock:
                    await self.stream.send(data)
        except TimeoutError:
            raise _Close from None  # the client does not read

    async def _read_line(self) -> bytes | None:
        """The next line without its newline; None at the end of input. Raises ``_Close``
        after answering a line that is too long or a request that stalls."""
        limit = self.server.max_line
        while True:
            i = self._buf.find(b"\n", self._scanned)
            if i >= 0:
                line = bytes(self._buf[:i])
                del self._buf[: i + 1]
                self._admission.release(self.cid, i + 1)
                self._scanned = 0
                self._deadline = None
                if len(line) > limit:
                    await self._too_long()
                return line
            if len(self._buf) > limit:
                await self._too_long()
            self._scanned = len(self._buf)
            if self._eof:
                line = bytes(self._buf)  # a last request without its newline still counts
                self._admission.release(self.cid, len(self._buf))
                self._buf.clear()
                return line or None
            now = anyio.current_time()
            if self._buf and self._deadline is None:
                self._deadline = now + self.server.request_timeout  # a request has begun
            # idle: only a complete request (or a subscription) keeps the connection open
            timeout = (
                self._deadline - now
                if self._deadline is not None
                else max(0.0, self._idle_deadline - now)
            )
            readable = False
            with anyio.move_on_after(timeout):
                # wait apart from receive(): a receive cut short by a timeout or a shutdown
                # can race its own wake-up on asyncio (and log InvalidStateError)
                await anyio.wait_readable(self._raw)
                readable = True
            if self.evicted:
                raise _Close
            if not readable:  # timed out
                if self._buf:
                    await self._send_quietly(
                        p.error(
                            None,
                            p.INVALID_REQUEST,
                            "invalid request: the request line was not "
                            f"completed within {self.server.request_timeout:g}s; closing",
                        )
                    )
                    raise _Close
                if not self._subs:
                    raise _Close  # idle
                self._idle_deadline = anyio.current_time() + self.server.idle_timeout
                continue
            room = self._admission.reserve(self.cid, _RECEIVE)
            if room.evict is not None:
                self.server._evict(room.evict)
            if not room.admit:
                await self._send_quietly(
                    p.error(
                        None, p.REFUSED, "the daemon holds too many unfinished requests; closing"
                    )
                )
                raise _Close
            # into one shared buffer: a fresh 64 KiB object per read, from thousands of
            # clients, fragments the heap for good (RSS grew by 80 MB under a flood)
            scratch = self.server._scratch
            try:
                n = self._raw.recv_into(scratch)
            except BlockingIOError:
                n = -1  # woken for nothing
            except ConnectionResetError:
                n = 0
            self._admission.release(self.cid, _RECEIVE - max(n, 0))
            if n == 0:
                self._eof = True
            elif n > 0:
                self._buf += memoryview(scratch)[:n]

    async def _too_long(self) -> None:
        await self._send_quietly(
            p.error(
                None,
                p.INVALID_REQUEST,
                f"invalid request: line longer than {self.server.max_line} bytes; closing",
            )
        )
        raise _Close

    async def _send_quietly(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(*_DISCONNECTS):
            await self.send(message)

    # --- dispatch -------------------------------------------------------------------------

    async def _handle(self, line: bytes) -> None:
        try:
            req = p.parse_request(p.decode(line))
        except p.RPCError as exc:
            if not exc.notification:
                await self.send(p.error(exc.request_id, exc.code, exc.message, exc.data))
            return
        answer = await self._dispatch(req)
        if answer is not None and not req.notification:
            await self.send(answer)

    async def _dispatch(self, req: p.Request) -> bytes | None:
        """The encoded answer, or None when the handler answered itself."""
        try:
            if req.method in p.CHANGE_METHODS and not await self._allowed():
                raise NotAllowed(self.peer.uid, req.method)
            params = p.check_params(req.method, req.params)
            result = await self._handlers[req.method](req, params)
            if result is _NO_RESPONSE:
                return None
            try:
                return p.encode(p.response(req.id, result))
            except ValueError as exc:  # a result JSON cannot hold: a bug, not the caller's
                raise RuntimeError(f"the answer is not JSON: {exc}") from exc
        except _DISCONNECTS:
            raise
        except Exception as exc:
            err = error_for(exc)
            if err.code == p.INTERNAL_ERROR:
                log.exception("control: %s failed", req.method)
            return p.encode(p.error(req.id, err.code, err.message, err.data))

    async def _allowed(self) -> bool:
        if self._may_change is None:
            self._may_change = await self.server.authorized(self.peer)
        return self._may_change

    # --- methods --------------------------------------------------------------------------

    async def _status(self, req: p.Request, a: dict[str, Any]) -> Any:
        return await self.api.status()

    async def _list(self, req: p.Request, a: dict[str, Any]) -> Any:
        jobs = await self.api.list_jobs()
        status = await self.api.status()
        if not await self._allowed():
            jobs = hide_env(jobs)
        return {"jobs": jobs, "invalid_files": status.get("invalid_files", [])}

    async def _show(self, req: p.Request, a: dict[str, Any]) -> Any:
        shown = await self.api.show_job(a["job_id"])
        # env values only to those who may change the job (docs/security.md)
        return shown if await self._allowed() else hide_env(shown)

    async def _run(self, req: p.Request, a: dict[str, Any]) -> Any:
        run = await self.api.run_job(a["job_id"], a["params"])
        return {"run": run.to_json()}

    async def _cancel(self, req: p.Request, a: dict[str, Any]) -> Any:
        if a["run_id"] is not None:
            ids = await self.api.cancel_run(a["run_id"])
        else:
            ids = await self.api.cancel_job(a["job_id"])
        return {"cancelled": ids}

    async def _runs(self, req: p.Request, a: dict[str, Any]) -> Any:
        state = RunState(a["state"]) if a["state"] is not None else None
        runs = await self.api.runs(a["job_id"], limit=a["limit"], state=state)
        return {"runs": [r.to_json() for r in runs]}

    async def _target(self, run_id: int | None, job_id: str | None) -> RunRecord:
        """The run named, or the job's latest run."""
        if run_id is not None:
            return await self.api.get_run(run_id)
        assert job_id is not None
        run = await self.api.latest_run(job_id)
        if run is None:
            await self.api.show_job(job_id)  # raises JobNotFound for an unknown job
            raise p.RPCError(p.NOT_FOUND, f"job '{job_id}' has no runs yet", {"job_id": job_id})
        return run

    async def _logs(self, req: p.Request, a: dict[str, Any]) -> Any:
        run = await self._target(a["run_id"], a["job_id"])
        path = self.api.log_path(run)
        offset = a["offset"]
        data, size = await anyio.to_thread.run_sync(_read_log, path, offset, a["max_bytes"])
        at_end = offset + len(data) >= size
        text, used = _chunk(data, a["encoding"], whole=at_end and run.state.finished)
        # eof: nothing more to read now (a character still being written stays for later)
        return {
            "run": run.to_json(),
            "offset": offset,
            "next_offset": offset + used,
            "size": size,
            "eof": at_end,
            "encoding": a["encoding"],
            "data": text,
        }

    async def _pause(self, req: p.Request, a: dict[str, Any]) -> Any:
        await self.api.pause(a["job_id"])
        return {"job_id": a["job_id"], "paused": True}

    async def _resume(self, req: p.Request, a: dict[str, Any]) -> Any:
        await self.api.resume(a["job_id"])
        return {"job_id": a["job_id"], "paused": False}

    async def _reload(self, req: p.Request, a: dict[str, Any]) -> Any:
        return await self.api.reload()

    async def _why(self, req: p.Request, a: dict[str, Any]) -> Any:
        return await self.api.why(a["job_id"])

    async def _metrics(self, req: p.Request, a: dict[str, Any]) -> Any:
        return {
            "content_type": "text/plain; version=0.0.4; charset=utf-8",
            "text": await self.api.metrics_text(),
        }

    async def _unsubscribe(self, req: p.Request, a: dict[str, Any]) -> Any:
        scope = self._subs.pop(a["subscription"], None)
        if scope is not None:
            scope.cancel()
        return {"unsubscribed": scope is not None}

    async def _subscribe(self, req: p.Request, a: dict[str, Any]) -> Any:
        assert self._tg is not None
        await self._tg.start(self._subscription, req, a)
        return _NO_RESPONSE

    # --- subscriptions --------------------------------------------------------------------

    async def _subscription(
        self, req: p.Request, a: dict[str, Any], *, task_status: TaskStatus[None]
    ) -> None:
        """Set up (errors go back as the request's error), answer, then stream until the
        followed run ends, ``unsubscribe`` or the connection ends."""
        sid = next(self.server._sub_ids)
        async with self.api.subscribe() as events:
            run: RunRecord | None = None
            if a["run_id"] is not None or a["logs"]:
                run = await self._target(a["run_id"], a["job_id"])
            elif a["job_id"] is not None:
                await self.api.show_job(a["job_id"])  # raises JobNotFound
            if not req.notification:
                await self.send(
                    p.response(req.id, {"subscription": sid, "run": run.to_json() if run else None})
                )
            with anyio.CancelScope() as scope:
                self._subs[sid] = scope
                self._admission.busy(self.cid, 1)
                task_status.started()
                try:
                    if run is not None:
                        await self._follow(sid, run, events, a)
                    else:
                        await self._stream(sid, events, a["job_id"])
                except _DISCONNECTS:
                    raise
                except Exception as exc:
                    log.exception("control: subscription %d failed", sid)
                    await self.send(
                        p.notification(
                            "end", {"subscription": sid, "reason": "error", "message": str(exc)}
                        )
                    )
                finally:
                    self._subs.pop(sid, None)
                    self._admission.busy(self.cid, -1)

    async def _stream(
        self, sid: int, events: MemoryObjectReceiveStream[RunRecord], job_id: str | None
    ) -> None:
        async for run in events:
            if job_id is None or run.job_id == job_id:
                await self.send(p.notification("run", {"subscription": sid, "run": run.to_json()}))
        # the daemon dropped this subscriber (too slow): say so, and end
        await self.send(p.notification("end", {"subscription": sid, "reason": "dropped"}))

    async def _follow(
        self,
        sid: int,
        run: RunRecord,
        events: MemoryObjectReceiveStream[RunRecord],
        a: dict[str, Any],
    ) -> None:
        """One run: its state changes, its log as it grows (with ``logs``), then ``end``."""
        offset: int = a["offset"]
        poll = self.server.poll_interval
        live = True  # the daemon still feeds ``events``; else poll the run
        next_read = 0.0
        while True:
            finished = run.state.finished
            if a["logs"] and (finished or anyio.current_time() >= next_read):
                offset = await self._send_log(sid, run, offset, a["encoding"], final=finished)
                next_read = anyio.current_time() + poll
            if finished:
                break
            fresh: RunRecord | None = None
            with anyio.move_on_after(poll if a["logs"] or not live else math.inf):
                if live:
                    try:
                        while fresh is None:
                            event = await events.receive()
                            if event.run_id == run.run_id:
                                fresh = event
                    except (anyio.EndOfStream, anyio.ClosedResourceError):
                        live = False
                else:
                    await anyio.sleep(poll)
            if not live and fresh is None:
                fresh = await self.api.get_run(run.run_id)
            # events queued before the run was read may be older than it: never go back
            if (
                fresh is not None
                and fresh != run
                and _RANK.get(fresh.state, 2) >= _RANK.get(run.state, 2)
            ):
                run = fresh
                await self.send(p.notification("run", {"subscription": sid, "run": run.to_json()}))
        await self.send(
            p.notification("end", {"subscription": sid, "reason": "finished", "run": run.to_json()})
        )

    async def _send_log(
        self, sid: int, run: RunRecord, offset: int, encoding: str, *, final: bool
    ) -> int:
        path = self.api.log_path(run)
        while True:
            data, size = await anyio.to_thread.run_sync(_read_log, path, offset, 256 * 1024)
            if not data:
                return offset
            whole = final and offset + len(data) >= size
            text, used = _chunk(data, encoding, whole=whole)
            if used == 0:
                return offset  # only the start of a character so far
            await self.send(
                p.notification(
                    "log",
                    {
                        "subscription": sid,
                        "run_id": run.run_id,
                        "offset": offset,
                        "next_offset": offset + used,
                        "encoding": encoding,
                        "data": text,
                    },
                )
            )
            offset += used
