"""Turning what a job runs (``command``, ``entrypoint``, ``script``) into an argv, and env files."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from jobd.config.model import (
    Action,
    CommandAction,
    ContainerAction,
    EntrypointAction,
    ScriptAction,
)
from jobd.executors.abc import ContainerSpec, ProcessSpec

SHELL = "/bin/sh"

ENTRYPOINT_RUNNER = Path(__file__).with_name("_entrypoint.py").read_text(encoding="utf-8")
"""Source of the child-side entrypoint runner, passed with ``python -c``: the job's
interpreter may have no jobd installed, and running the file as a script would put
``jobd/executors/`` (with its ``abc.py``) in front of the job's ``sys.path``."""


def daemon_python() -> str:
    """The interpreter running the daemon, as an absolute path: the default ``python``.

    Symlinks are kept on purpose: a virtualenv's ``bin/python`` is a symlink, and its
    target would start without the virtualenv's packages. It is never a PATH lookup (a
    version-manager shim costs about ten times the start-up of the interpreter itself)."""
    exe = sys.executable or shutil.which("python3") or "/usr/bin/python3"
    return os.path.abspath(exe)


def argv_for(
    action: CommandAction | EntrypointAction | ScriptAction, *, default_python: str
) -> tuple[str, ...]:
    """The argv that runs ``action``.

    - ``command = [...]``: itself, exec'd without a shell;
    - ``command = "..."``: ``/bin/sh -c "..."``;
    - ``entrypoint``: ``PYTHON -c RUNNER ENTRYPOINT [PATH...]`` (see ``_entrypoint.py``);
    - ``script``: ``PYTHON SCRIPT ARGS...``.

    PYTHON is the action's ``python`` or else ``default_python`` (use ``daemon_python()``)."""
    match action:
        case CommandAction(command=str() as line):
            return (SHELL, "-c", line)
        case CommandAction(command=tuple() as argv):
            return argv
        case EntrypointAction():
            python = action.python or default_python
            return (
                python,
                "-c",
                ENTRYPOINT_RUNNER,
                action.entrypoint,
                *(str(p) for p in action.path),
            )
        case ScriptAction():
            return (action.python or default_python, str(action.script), *action.args)
    raise TypeError(f"not a step action: {action!r}")


def process_spec(
    action: CommandAction | EntrypointAction | ScriptAction | ContainerAction,
    *,
    default_python: str,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    log_max_bytes: int,
    timeout: float | None,
    kill_grace: float,
    user: str | None,
    env_keys: Iterable[str] = (),
    env_file: Path | None = None,
    render: Callable[[str], str] | None = None,
    render_shell: Callable[[str], tuple[str, dict[str, str]]] | None = None,
) -> ProcessSpec:
    """The spec of one attempt of an action, for whichever executor runs it.

    A step action comes rendered. A container's image and command are rendered here with
    ``render`` (``render_shell`` for a shell string: its values travel as environment
    variables, never as shell code); it gets no argv (its command is the container's) and
    only the job's own variables (``env_keys``, the keys of ``env_file``, the shell values)
    besides ``JOBD_*``."""
    container = None
    argv: tuple[str, ...] = ()
    if isinstance(action, ContainerAction):
        r = render or (lambda text: text)
        cmd: tuple[str, ...] | str | None = action.command
        values: dict[str, str] = {}
        if isinstance(cmd, str):
            cmd, values = render_shell(cmd) if render_shell is not None else (cmd, {})
            env = {**env, **values}
        elif cmd is not None:
            cmd = tuple(map(r, cmd))
        keys = set(env_keys) | set(values)
        if env_file is not None:
            keys |= set(read_env_file(env_file))
        container = ContainerSpec(image=r(action.image), command=cmd, passthrough=frozenset(keys))
    else:
        argv = argv_for(action, default_python=default_python)
    return ProcessSpec(
        argv=argv,
        env=env,
        cwd=cwd,
        log_path=log_path,
        log_max_bytes=log_max_bytes,
        timeout=timeout,
        kill_grace=kill_grace,
        user=user,
        container=container,
    )


def host_user(action: Action) -> bool:
    """Whether a job's ``user`` names a user of this host (its process runs here) rather than
    one of a container image."""
    return not isinstance(action, ContainerAction)


_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "$": "$"}


def _unquote(value: str) -> str:
    """One value as written after ``=``: raises ValueError with the reason."""
    if value[:1] == "'":
        end = value.find("'", 1)
        if end < 0:
            raise ValueError("unterminated single quote")
        rest, value = value[end + 1 :], value[1:end]
    elif value[:1] == '"':
        out: list[str] = []
        i = 1
        while i < len(value) and value[i] != '"':
            if value[i] == "\\" and i + 1 < len(value):
                i += 1
                out.append(_ESCAPES.get(value[i], "\\" + value[i]))
            else:
                out.append(value[i])
            i += 1
        if i >= len(value):
            raise ValueError("unterminated double quote")
        rest, value = value[i + 1 :], "".join(out)
    else:
        # unquoted: a '#' after whitespace starts a comment
        return re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
    if rest.strip() and not rest.strip().startswith("#"):
        raise ValueError(f"unexpected text after the closing quote: {rest.strip()!r}")
    return value


def read_env_file(path: Path) -> dict[str, str]:
    """Read an ``env_file``: ``KEY=VALUE`` lines; later keys win.

    Blank lines and ``#`` comments are skipped; a line may start with ``export``. Values may
    be single-quoted (taken literally) or double-quoted (``\\n \\t \\r \\\\ \\" \\$`` escapes);
    in an unquoted value, `` #`` starts a comment and surrounding whitespace is dropped. No
    variable expansion. Raises ValueError ``"PATH:LINE: reason"``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read env file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}:{_line_of(exc.object, exc.start)}: not valid UTF-8") from None
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.fullmatch(line)
        if match is None:
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw.strip()!r}")
        key, value = match.groups()
        try:
            env[key] = _unquote(value)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {key}: {exc}") from None
        if "\0" in env[key]:
            raise ValueError(f"{path}:{number}: {key}: value holds a NUL character")
    return env


def _line_of(data: bytes, offset: int) -> int:
    """1-based line number of byte ``offset`` in ``data``."""
    return data.count(b"\n", 0, offset) + 1


__all__ = ["ENTRYPOINT_RUNNER", "SHELL", "argv_for", "daemon_python", "read_env_file"]
