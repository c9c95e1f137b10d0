"""The Celery app a worker runs: ``JOBD_CONFIG=/etc/jobd/jobd.toml celery -A
jobd.remote.worker worker -Q jobd.default``.

It reads the ``[celery]`` table of the daemon config named by ``JOBD_CONFIG`` (the same file
the daemon reads; only that table is used here) and registers one task, ``jobd.run``, which
runs a signed payload (``jobd.remote.execute``)."""

from __future__ import annotations

import logging
from typing import Any

from jobd.config.loader import default_config_path, load_config
from jobd.remote.broker import make_app
from jobd.remote.execute import SETPRIV, run_payload
from jobd.remote.protocol import TASK_NAME, PayloadRefused

log = logging.getLogger("jobd.remote")


def _load() -> Any:
    path = default_config_path()
    config = load_config(path)
    if config.celery is None:
        raise SystemExit(
            f"{path}: no [celery] table: a worker needs its broker and signing_key_file"
        )
    return config.celery


cfg = _load()
if SETPRIV is None:
    log.error(
        "setpriv (util-linux) is not installed: every remote run on this worker fails until it is"
    )
app = make_app(cfg, main="jobd.remote.worker")


@app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True, ignore_result=True)  # type: ignore[untyped-decorator]
def run(payload: object = None, signature: object = None) -> None:
    """Run one signed payload; a payload that is unsigned or badly signed is refused."""
    try:
        run_payload(payload, signature, cfg)
    except PayloadRefused as exc:
        log.error("refused a task: %s", exc)
