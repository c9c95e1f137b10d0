"""One error tree: every jobd error is a ``JobdError`` and also the fitting builtin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class JobdError(Exception):
    """Root of every error jobd raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a config or job file, as ``jobd check`` prints it.

    ``str(problem)`` is ``file:line: job 'id': key: message``; parts that are unknown are
    left out (``file: key: message`` for a daemon-config key, ``file: message`` for bad TOML).
    """

    file: Path | str
    message: str
    line: int | None = None
    job: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else f"{self.file}"
        parts = [where]
        if self.job is not None:
            parts.append(f"job '{self.job}'")
        if self.key is not None:
            parts.append(self.key)
        parts.append(self.message)
        return ": ".join(parts)


class ConfigError(JobdError, ValueError):
    """A config or job file is invalid; ``problems`` holds every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class JobNotFound(JobdError, LookupError):
    """No job has this id; ``near`` holds the ids close to it ("did you mean")."""

    def __init__(self, job_id: str, near: Sequence[str] = ()) -> None:
        self.job_id = job_id
        self.near = tuple(near)
        hint = f"; did you mean {' or '.join(repr(n) for n in self.near)}?" if near else ""
        super().__init__(f"no job '{job_id}'{hint}")


class RunNotFound(JobdError, LookupError):
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run '{run_id}'")


class NotAllowed(JobdError, PermissionError):
    def __init__(self, uid: int, action: str) -> None:
        self.uid = uid
        self.action = action
        super().__init__(
            f"uid {uid} may not {action}: only root, the daemon's user and members "
            "of the socket's group may change anything"
        )


class ExpressionError(JobdError, ValueError):
    """An ``${{ }}`` expression failed to parse or evaluate."""


class JournalError(JobdError, RuntimeError):
    """The journal could not be opened or is from an incompatible version."""


class StorageError(JournalError):
    """The journal's storage failed (disk full, read-only, I/O error): the journal itself may
    well be intact; the machine needs fixing, not the file."""


def source_path(path: Path) -> str:
    """How a file is named in messages: relative to the working directory when below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
