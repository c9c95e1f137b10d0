"""``/metrics`` and ``/healthz`` on the daemon's HTTP endpoint (docs/metrics.md).

``/metrics`` is the Prometheus text, behind the endpoint's token like every page (a scraper
sends ``Authorization: Bearer <token>``); ``/healthz`` answers without it, for probes: 200
``ok`` while the loop is responsive and the journal writable, else 503 naming what is not."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from jobd.config.model import DaemonConfig
from jobd.control.api import DaemonAPI
from jobd.metrics import CONTENT_TYPE

PUBLIC = frozenset({"/healthz"})


def routes(api: DaemonAPI, config: DaemonConfig) -> Sequence[BaseRoute]:
    async def metrics(request: Request) -> Response:
        return Response(api.render_metrics(), media_type=CONTENT_TYPE)

    async def healthz(request: Request) -> Response:
        health = api.health()
        if all(health.values()):
            return PlainTextResponse("ok\n")
        bad = ", ".join(k for k, ok in health.items() if not ok)
        return PlainTextResponse(f"unhealthy: {bad}\n", 503)

    return [Route("/metrics", metrics, name="metrics"), Route("/healthz", healthz, name="healthz")]
