"""Connections to the broker from a ``CeleryConfig``: redis-py clients (daemon and worker)
and the Celery app that carries ``jobd.run`` messages."""

from __future__ import annotations

import functools
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from jobd.config.model import CeleryConfig

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    from celery import Celery


def redis_options(cfg: CeleryConfig) -> dict[str, Any]:
    """Keyword arguments for ``Redis.from_url(cfg.broker, **...)``: credentials and TLS."""
    opts: dict[str, Any] = {
        "username": cfg.username,
        "password": cfg.password,
        # long enough for the blocking reads, short enough to notice a
        # broker that went away without closing the connection
        "socket_timeout": max(10.0, cfg.lease),
        "socket_connect_timeout": 5.0,
        "health_check_interval": 30,
    }
    opts.update(_no_client_setinfo())
    if cfg.broker.startswith("rediss://"):
        opts["ssl_cert_reqs"] = "required"
        if cfg.ca_file is not None:
            opts["ssl_ca_certs"] = str(cfg.ca_file)
    return opts


@functools.cache
def _no_client_setinfo() -> dict[str, Any]:
    """No ``CLIENT SETINFO`` on each new connection: two round trips, and redis-py looks its
    own version up in the installed packages' metadata (files) every time."""
    import inspect

    from redis.connection import AbstractConnection

    if "driver_info" in inspect.signature(AbstractConnection.__init__).parameters:
        return {"driver_info": None}
    return {"lib_name": None, "lib_version": None}  # redis-py before driver_info


def async_client(cfg: CeleryConfig) -> redis.asyncio.Redis:
    import redis.asyncio

    return redis.asyncio.Redis.from_url(cfg.broker, **redis_options(cfg))


def sync_client(cfg: CeleryConfig) -> redis.Redis:
    import redis

    return redis.Redis.from_url(cfg.broker, **redis_options(cfg))


def kombu_url(cfg: CeleryConfig) -> str:
    """The broker URL as kombu spells it, credentials included (never logged)."""
    parts = urlsplit(cfg.broker)
    auth = ""
    if cfg.username or cfg.password:
        auth = f"{quote(cfg.username or '', safe='')}:{quote(cfg.password or '', safe='')}@"
    if parts.scheme == "unix":
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return f"redis+socket://{auth}{parts.path}?virtual_host={db}"
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{auth}{host}{port}{parts.path or '/0'}"


def make_app(cfg: CeleryConfig, *, main: str = "jobd") -> Celery:
    """The Celery app both sides use: late acks, one message prefetched per process, no
    result backend (results travel in jobd's own stream), JSON only."""
    from celery import Celery

    app = Celery(main, broker=kombu_url(cfg), set_as_current=False)
    conf: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": "jobd.default",
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # a restarted Redis is waited for
        "broker_transport_options": {
            # a redelivered message is harmless (the claim refuses it); this only bounds
            # how long a message held by a dead worker waits for another
            "visibility_timeout": 3600,
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
        },
        "worker_send_task_events": False,
        "enable_utc": True,
    }
    if cfg.broker.startswith("rediss://"):
        conf["broker_use_ssl"] = {
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            **({"ssl_ca_certs": str(cfg.ca_file)} if cfg.ca_file else {}),
        }
    app.conf.update(conf)
    return app
