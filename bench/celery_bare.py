"""A bare Celery app for ``celery_bench.py``'s baseline: one task that pushes the time it
started to a Redis list. Broker from ``$BENCH_BROKER`` (a kombu URL)."""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery

BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/0")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")

app = Celery("bare", broker=BROKER, set_as_current=False)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
_r: Any = None


@app.task(name="bare.ping")  # type: ignore[untyped-decorator]
def ping(key: str) -> None:
    global _r
    started = time.time()
    if _r is None:
        _r = redis.Redis.from_url(REDIS_URL)
    _r.rpush(key, repr(started))
