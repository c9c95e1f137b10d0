"""What the container executor asks Docker for: the create body, its environment, labels
and command, the engine's address, the stop grace. Pure: no Docker calls."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from typing import Any

from jobd.config.model import ContainerAction
from jobd.executors.abc import ProcessSpec

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
LABEL_INSTANCE = "jobd.instance"
LABEL_RUN_ID = "jobd.run_id"
LABEL_JOB_ID = "jobd.job_id"

# --- pure decisions ----------------------------------------------------------------------


def docker_url(url: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The Docker host to talk to: ``url``, else ``$DOCKER_HOST``, else the standard socket."""
    if url:
        return url
    env = os.environ if environ is None else environ
    return env.get("DOCKER_HOST") or DEFAULT_DOCKER_URL


def container_env(env: Mapping[str, str], passthrough: Collection[str] = ()) -> list[str]:
    """The container's environment (``KEY=value`` items), sorted by key.

    Only the job's own variables cross into the container: every ``JOBD_*`` variable of
    ``env`` plus the keys named in ``passthrough`` (the job's ``env`` table and ``env_file``).
    The daemon's environment (PATH, HOME, secrets it was started with) stays outside; the
    image's own ``ENV`` fills in the rest."""
    return [
        f"{key}={value}"
        for key, value in sorted(env.items())
        if key.startswith("JOBD_") or key in passthrough
    ]


def container_cmd(command: tuple[str, ...] | str | None) -> list[str] | None:
    """``Cmd`` for the command: a string runs under ``/bin/sh -c``; None keeps the image's."""
    if command is None:
        return None
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return list(command)


def container_labels(env: Mapping[str, str], instance: str | None = None) -> dict[str, str]:
    """Labels that let crash recovery find a run's container: instance, run id, job id."""
    pairs = (
        (LABEL_INSTANCE, instance or env.get("JOBD_INSTANCE")),
        (LABEL_RUN_ID, env.get("JOBD_RUN_ID")),
        (LABEL_JOB_ID, env.get("JOBD_JOB_ID")),
    )
    return {label: value for label, value in pairs if value is not None}


def container_config(
    action: ContainerAction,
    spec: ProcessSpec,
    *,
    passthrough: Collection[str] = (),
    instance: str | None = None,
    network: str | None = None,
    init: bool = True,
) -> dict[str, Any]:
    """The body of ``POST /containers/create`` for one attempt."""
    host: dict[str, Any] = {"Init": init, "LogConfig": {"Type": "none", "Config": {}}}
    if network is not None:
        host["NetworkMode"] = network
    config: dict[str, Any] = {
        "Image": action.image,
        "Env": container_env(spec.env, passthrough),
        "Labels": container_labels(spec.env, instance),
        "AttachStdin": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": False,
        "Tty": False,
        "HostConfig": host,
    }
    cmd = container_cmd(action.command)
    if cmd is not None:
        config["Cmd"] = cmd
    if spec.user is not None:
        config["User"] = spec.user  # a user of the image, not of the host
    return config


def stop_grace(kill_grace: float) -> int:
    """Docker's stop timeout is whole seconds: round the grace up, at least 1."""
    return max(1, math.ceil(kill_grace))
