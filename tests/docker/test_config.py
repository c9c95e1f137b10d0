"""The container executor's pure decisions: what it asks Docker for, and its messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiodocker.exceptions import DockerError

from jobd.config.model import ContainerAction
from jobd.executors.abc import ProcessSpec
from jobd.executors.docker import (
    DEFAULT_DOCKER_URL,
    container_cmd,
    container_config,
    container_env,
    create_error,
    docker_url,
    stop_grace,
)

ENV = {
    "JOBD_RUN_ID": "5",
    "JOBD_JOB_ID": "etl",
    "JOBD_INSTANCE": "host-1",
    "PATH": "/usr/bin",
    "HOME": "/root",
    "AWS_SECRET": "x",
    "DB": "postgres://db",
}


def spec(**kwargs: Any) -> ProcessSpec:
    return ProcessSpec(
        argv=("x",), env=ENV, cwd=Path("/srv"), log_path=Path("/tmp/x.log"), **kwargs
    )


def test_env_rule() -> None:
    assert container_env(ENV, {"DB"}) == [
        "DB=postgres://db",
        "JOBD_INSTANCE=host-1",
        "JOBD_JOB_ID=etl",
        "JOBD_RUN_ID=5",
    ]
    assert container_env(ENV) == ["JOBD_INSTANCE=host-1", "JOBD_JOB_ID=etl", "JOBD_RUN_ID=5"]
    assert container_env(ENV, {"NOT_SET"}) == container_env(ENV)


def test_cmd() -> None:
    assert container_cmd("a | b") == ["/bin/sh", "-c", "a | b"]
    assert container_cmd(("prog", "arg one")) == ["prog", "arg one"]
    assert container_cmd(None) is None


def test_config() -> None:
    config = container_config(
        ContainerAction(image="python:3.12-slim", command="echo hi"), spec(), passthrough={"DB"}
    )
    assert config["Image"] == "python:3.12-slim"
    assert config["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert config["Labels"] == {"jobd.instance": "host-1", "jobd.run_id": "5", "jobd.job_id": "etl"}
    assert "WorkingDir" not in config and "User" not in config
    assert "NetworkMode" not in config["HostConfig"]  # the engine's default network
    assert config["HostConfig"]["Init"] is True
    assert config["HostConfig"]["LogConfig"]["Type"] == "none"  # read by attach, kept by jobd
    assert config["Env"][0] == "DB=postgres://db"


def test_config_options() -> None:
    config = container_config(
        ContainerAction(image="img"),
        spec(user="1000"),
        instance="other",
        network="none",
        init=False,
    )
    assert "Cmd" not in config  # the image's own CMD
    assert config["User"] == "1000"
    assert config["Labels"]["jobd.instance"] == "other"
    assert config["HostConfig"]["NetworkMode"] == "none"
    assert config["HostConfig"]["Init"] is False


def test_url() -> None:
    assert docker_url("unix:///x.sock", {"DOCKER_HOST": "tcp://h:2375"}) == "unix:///x.sock"
    assert docker_url(None, {"DOCKER_HOST": "tcp://h:2375"}) == "tcp://h:2375"
    assert docker_url(None, {}) == DEFAULT_DOCKER_URL == "unix:///var/run/docker.sock"


def test_stop_grace_is_whole_seconds() -> None:
    assert [stop_grace(g) for g in (0, 0.2, 1, 1.5, 10)] == [1, 1, 1, 2, 10]


def test_create_errors() -> None:
    missing = DockerError(404, "No such image: img:1")
    assert create_error(missing, "img:1", "u") == (
        "image 'img:1' is not present on the Docker host (jobd does not pull; docker pull it first)"
    )
    refused = DockerError(900, "Cannot connect to Docker Engine via unix:///s [refused]")
    assert create_error(refused, "img", "unix:///s").startswith(
        "cannot reach the Docker engine at unix:///s ("
    )
    assert create_error(aiohttp.ClientConnectionError("boom"), "img", "u") == (
        "cannot reach the Docker engine at u (boom)"
    )
    assert create_error(DockerError(400, "invalid reference format"), "Bad:Name", "u") == (
        "cannot create a container from image 'Bad:Name' (invalid reference format)"
    )
