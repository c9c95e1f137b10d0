"""The HTTP endpoint in the daemon's own event loop: uvicorn's ``Server`` on a socket bound
here, started and stopped as one task of the daemon's task group (docs/dashboard.md)."""

from __future__ import annotations

import contextlib
import errno
import grp
import logging
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import uvicorn
from anyio.abc import TaskStatus

from jobd._exceptions import ConfigError, Problem
from jobd.config.http import read_token
from jobd.config.model import DaemonConfig, HttpConfig
from jobd.control.api import DaemonAPI
from jobd.web.app import build_app

log = logging.getLogger("jobd.web")

SHUTDOWN_GRACE = 2  # seconds open requests get when the daemon stops


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the daemon owns SIGTERM, SIGINT and SIGHUP."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_http(
    api: DaemonAPI,
    config: DaemonConfig,
    *,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard on ``config.http`` until cancelled (started with its URL); then
    close the listener, end every live stream and give open requests ``SHUTDOWN_GRACE``
    seconds."""
    http = config.http
    assert http is not None
    token = (
        await anyio.to_thread.run_sync(read_token, http.token_file)
        if http.token_file is not None
        else None
    )
    sock = await anyio.to_thread.run_sync(_bind, http, config)
    app, close_streams = build_app(api, config, token=token)
    server = _Server(
        uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            proxy_headers=False,
            ws="none",
            http="h11",
            timeout_graceful_shutdown=SHUTDOWN_GRACE,
        )
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    server.config.load()
    server.lifespan = server.config.lifespan_class(server.config)
    try:
        await server.startup(sockets=[sock])
        url = url_of(http, sock)
        log.info("dashboard at %s", url)
        task_status.started(url)
        await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            close_streams()
            with anyio.move_on_after(SHUTDOWN_GRACE + 1):
                if server.started:
                    await server.shutdown(sockets=[sock])
            sock.close()
            if http.path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(http.path)


def url_of(http: HttpConfig, sock: socket.socket) -> str:
    """What to open: ``http://127.0.0.1:8750/``, the port the kernel gave for port 0."""
    if http.path is not None:
        return f"unix:{http.path}"
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _bind(http: HttpConfig, config: DaemonConfig) -> socket.socket:
    try:
        if http.path is not None:
            return _bind_unix(http.path, config)
        assert http.host is not None and http.port is not None
        family = socket.AF_INET6 if ":" in http.host else socket.AF_INET
        infos = socket.getaddrinfo(
            http.host,
            http.port,
            family if ":" in http.host else 0,
            socket.SOCK_STREAM,
            0,
            socket.AI_PASSIVE,
        )
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(1024)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock
    except OSError as exc:
        raise ConfigError(
            [
                Problem(
                    file=str(config.path or "config"),
                    key="http.listen",
                    message=f"cannot listen on {http.listen}: {exc.strerror or exc}",
                )
            ]
        ) from exc


def _bind_unix(path: Path, config: DaemonConfig) -> socket.socket:
    """Bind the socket file with the control socket's mode and group: the same people may
    connect, so the same people may read logs (docs/protocol.md, Authorization)."""
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except ConnectionRefusedError:
            os.unlink(path)  # stale: nobody listens
        else:
            raise OSError(errno.EADDRINUSE, f"another process listens on {path}")
        finally:
            probe.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old = os.umask(0o177)  # never briefly open to all before the chmod
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        os.chmod(path, config.socket_mode)
        if config.socket_group is not None:
            os.chown(path, -1, grp.getgrnam(config.socket_group).gr_gid)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
