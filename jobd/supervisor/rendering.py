"""A run's expressions: the context they see, and commands, arguments and values rendered
in it (values reach a shell only as environment variables: ``jobd.expressions.shell``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobd.config.model import CommandAction, ContainerAction, JobDef, ScriptAction, StepAction
from jobd.expressions import parse_template
from jobd.expressions.shell import shell_command
from jobd.journal.abc import RunRecord


class RunFailedToRender(Exception):
    """An expression failed at run time; the run fails with this message."""


def iso(d: datetime | None) -> str | None:
    return d.isoformat() if d is not None else None


def expression_context(
    job: JobDef, run: RunRecord, now: datetime, env: Mapping[str, str], needs: dict[str, Any]
) -> dict[str, Any]:
    params = {**job.params, **run.params}
    return {
        "params": params,
        "matrix": dict(run.matrix or {}),
        "needs": needs,
        "env": env,
        "job": {"id": job.id, "timezone": job.timezone, "file": str(job.source.file)},
        "run": {
            "id": run.run_id,
            "attempt": run.attempt,
            "trigger": str(run.trigger),
            "scheduled_for": iso(run.scheduled_for),
            "flow_id": run.flow_id,
        },
        "now": {
            "iso": now.isoformat(),
            "timestamp": now.timestamp(),
            "date": now.date().isoformat(),
            "year": now.year,
            "month": now.month,
            "day": now.day,
            "hour": now.hour,
            "minute": now.minute,
            "weekday": now.isoweekday(),
        },
    }


def render(text: str, ctx: Mapping[str, Any]) -> str:
    try:
        return parse_template(text).render(ctx)
    except Exception as exc:  # ExpressionError, or a type error in a function
        raise RunFailedToRender(f"expression in {text!r}: {exc}") from exc


def render_shell(text: str, ctx: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """A shell-string command: its script, and its values as environment variables (values
    never become shell code: ``jobd.expressions.shell``)."""
    try:
        return shell_command(parse_template(text)).render(ctx)
    except Exception as exc:  # ExpressionError, or a type error in a function
        raise RunFailedToRender(f"expression in {text!r}: {exc}") from exc


def render_step(
    action: StepAction | ContainerAction, ctx: Mapping[str, Any]
) -> tuple[StepAction | ContainerAction, dict[str, str]]:
    """The action with its expressions rendered, and the environment entries it needs. A
    container's image and command are rendered by ``process_spec`` (given ``render`` and
    ``render_shell``): the executors own what a container is."""
    if isinstance(action, CommandAction):
        cmd = action.command
        if isinstance(cmd, str):
            script, values = render_shell(cmd, ctx)
            return CommandAction(command=script), values
        return CommandAction(command=tuple(render(a, ctx) for a in cmd)), {}
    if isinstance(action, ScriptAction):
        return ScriptAction(
            script=action.script,
            python=action.python,
            args=tuple(render(a, ctx) for a in action.args),
        ), {}
    return action, {}
