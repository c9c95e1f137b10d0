"""``[http]`` of the daemon config: where the dashboard listens and who may look. Pure parsing,
plus the token file read (docs/dashboard.md, Safety)."""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import stat
from pathlib import Path

MIN_TOKEN = 16  # characters; a shorter token is refused as guessable

_HOST_PORT = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]/\s]*)):(?P<port>\d{1,5})")


def parse_listen(text: str) -> tuple[str | None, int | None, str | None, bool]:
    """``"127.0.0.1:8750"``, ``"[::1]:8750"``, ``"localhost:8750"`` or a unix socket path
    (anything with a ``/``) into ``(host, port, path, loopback)``; raise ``ValueError``.

    Port 0 asks the kernel for a free port (the daemon logs the one it got)."""
    text = text.strip()
    if "/" in text and not text.startswith("["):
        return None, None, text, True
    m = _HOST_PORT.fullmatch(text)
    if m is None:
        raise ValueError(
            f'{text!r} is neither HOST:PORT (e.g. "127.0.0.1:8750") nor a unix '
            'socket path (e.g. "/run/jobd/http.sock")'
        )
    port = int(m["port"])
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    host = m["v6"] if m["v6"] is not None else m["host"]
    if host in ("", "*"):
        raise ValueError(
            f"{text!r} names no host; write 127.0.0.1:{port} for this machine only, "
            f"or 0.0.0.0:{port} for every interface"
        )
    return host, port, None, is_loopback(host)


WEB_MODULES = ("starlette", "uvicorn", "jinja2")


def missing_web_modules() -> list[str]:
    """What of the ``web`` extra is not installed (looked up, not imported)."""
    return [m for m in WEB_MODULES if importlib.util.find_spec(m) is None]


def is_loopback(host: str) -> bool:
    """Only this machine can reach ``host``: ``localhost``, 127.0.0.0/8 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def token_problem(path: Path) -> str | None:
    """What is wrong with the token file, or None. Reads the file (call it off the loop)."""
    try:
        st = path.stat()
        token = read_token(path)
    except FileNotFoundError:
        return (
            f"token file {path} does not exist; create it with a random token, e.g. "
            f"head -c 24 /dev/urandom | base64 > {path} && chmod 600 {path}"
        )
    except OSError as exc:
        return f"token file {path} cannot be read: {exc.strerror}"
    except UnicodeDecodeError:
        return f"token file {path} is not UTF-8 text"
    if len(token) < MIN_TOKEN:
        return f"token file {path} holds {len(token)} characters; it needs at least {MIN_TOKEN}"
    if st.st_mode & stat.S_IROTH:
        mode = stat.S_IMODE(st.st_mode)
        return f"token file {path} is readable by every user (mode {mode:04o}); chmod o-r {path}"
    return None


def read_token(path: Path) -> str:
    """The token: the file's text without surrounding white space."""
    with open(path, encoding="utf-8") as f:
        return f.read().strip()
