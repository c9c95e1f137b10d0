"""What a reader who may not change a job is shown of it (docs/security.md): ``env`` values
are secrets as often as not, so such a reader gets their names only. Pure; the dashboard
applies the same rule."""

from __future__ import annotations

from typing import Any

HIDDEN = "<hidden>"


def hide_env(value: Any) -> Any:
    """``value`` (JSON-able data) with the values of every ``env`` table replaced by
    ``HIDDEN``, at any depth (a job's ``env``, each stage's)."""
    if isinstance(value, dict):
        return {
            k: ({name: HIDDEN for name in v} if k == "env" and isinstance(v, dict) else hide_env(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [hide_env(v) for v in value]
    return value
