"""The ``[celery]`` table of the daemon config: the broker of remote runs, read by the daemon
and by every worker (``jobd.remote.worker``) from the same file."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from jobd.config.model import CeleryConfig

BROKER_SCHEMES: Final = ("redis", "rediss", "unix")
MIN_SIGNING_KEY = 16  # bytes


def broker_problem(url: str) -> str | None:
    """Why ``url`` is not a broker URL jobd can use, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc})"
    if parts.scheme not in BROKER_SCHEMES:
        return (
            f"{url!r}: the scheme must be redis://, rediss:// or unix:// (a Redis server; "
            "jobd needs Redis streams beside the Celery queue)"
        )
    if parts.username or parts.password:
        return (
            f"{url!r} holds credentials: write the user as username and the password in "
            "password_file, so the config file can stay world-readable"
        )
    if parts.scheme == "unix" and not parts.path.startswith("/"):
        return f"{url!r}: a unix socket needs an absolute path, e.g. unix:///run/redis/redis.sock"
    if parts.scheme != "unix" and not parts.hostname:
        return f"{url!r} names no host"
    return None


def _secret(path: Path, what: str) -> tuple[bytes | None, str | None]:
    """The contents of a secret file, or a problem: missing, unreadable, or readable by all."""
    try:
        st = os.stat(path)
        data = path.read_bytes()
    except OSError as exc:
        return None, f"cannot read the {what} {str(path)!r}: {exc.strerror or exc}"
    if st.st_mode & stat.S_IROTH:
        return None, (
            f"the {what} {str(path)!r} is readable by every user; chmod o-r it (e.g. 0640)"
        )
    return data.strip(), None


def parse_celery(
    values: Mapping[str, Any],
    *,
    duration: Callable[[str], float | None],
    path_of: Callable[[str], Path],
    problem: Callable[[str, str], None],
) -> CeleryConfig | None:
    """A ``CeleryConfig`` from the table's validated ``values`` (kinds already checked), or
    None after reporting each problem through ``problem(key, message)``."""
    ok = True

    def bad(key: str, message: str) -> None:
        nonlocal ok
        ok = False
        problem(key, message)

    broker = values.get("broker")
    if broker is None:
        bad("broker", 'missing key broker (e.g. "redis://127.0.0.1:6379/0")')
    elif (why := broker_problem(broker)) is not None:
        bad("broker", why)
    key_file = values.get("signing_key_file")
    key: bytes | None = None
    if key_file is None:
        bad(
            "signing_key_file",
            "missing key signing_key_file: workers run only payloads "
            "signed with it (make one with: head -c 32 /dev/urandom | base64 > FILE)",
        )
    else:
        key, why = _secret(path_of(key_file), "signing key file")
        if why is not None:
            bad("signing_key_file", why)
        elif key is not None and len(key) < MIN_SIGNING_KEY:
            bad(
                "signing_key_file",
                f"the signing key is {len(key)} bytes; use at least {MIN_SIGNING_KEY} random bytes",
            )
    password: str | None = None
    pw_file = values.get("password_file")
    if pw_file is not None:
        data, why = _secret(path_of(pw_file), "password file")
        if why is not None:
            bad("password_file", why)
        elif data is not None:
            password = data.decode(errors="replace")
    if "username" in values and pw_file is None:
        bad("username", "a Redis ACL user needs its password_file")
    ca_file = values.get("ca_file")
    if ca_file is not None and broker is not None and not broker.startswith("rediss://"):
        bad("ca_file", "only applies with a rediss:// broker")
    lease = duration("lease")
    claim = duration("claim_timeout")
    if lease is not None and lease < 1:
        bad("lease", "must be at least 1s (workers renew it every third of it)")
    if not ok or broker is None or key is None or key_file is None:
        return None
    return CeleryConfig(
        broker=broker,
        signing_key=key,
        signing_key_file=path_of(key_file),
        username=values.get("username"),
        password=password,
        password_file=None if pw_file is None else path_of(pw_file),
        ca_file=None if ca_file is None else path_of(ca_file),
        max_parallel=values.get("max_parallel", 8),
        lease=30.0 if lease is None else lease,
        claim_timeout=600.0 if claim is None else claim,
        max_lost=values.get("max_lost", 3),
    )
