"""The ASGI app: the dashboard's routes, the endpoints other concerns add, and the guard in
front of all of them (read-only, token, Host check, security headers)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from jobd.config.http import is_loopback
from jobd.config.model import DaemonConfig
from jobd.control.api import DaemonAPI
from jobd.web import probes
from jobd.web.pages import STATIC_DIR, Dashboard

COOKIE = "jobd_token"
PAGE_CONCURRENCY = 2
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]

RouteFactory = Callable[[DaemonAPI, DaemonConfig], Sequence[BaseRoute]]

# Endpoints other concerns serve beside the dashboard: a factory of routes, and the paths
# that need no token (probes). Adding /metrics and /healthz (docs/dashboard.md, "Adding an
# endpoint") is one entry in each, e.g.
#   EXTRA_ROUTES.append(lambda api, config: [Route("/metrics", metrics(api))])
#   PUBLIC_PATHS.add("/healthz")
EXTRA_ROUTES: list[RouteFactory] = []
PUBLIC_PATHS: set[str] = set()

EXTRA_ROUTES.append(probes.routes)  # /metrics and /healthz (docs/metrics.md)
PUBLIC_PATHS.update(probes.PUBLIC)


def build_app(
    api: DaemonAPI, config: DaemonConfig, *, token: str | None
) -> tuple[ASGIApp, Callable[[], None]]:
    """The app, and what to call when the daemon stops (it ends the live streams)."""
    http = config.http
    assert http is not None
    # Who may read logs: whoever holds the token, or may connect to the unix socket (whose
    # mode and group are the control socket's). A tokenless TCP port is open to every local
    # user, so it shows no logs (docs/protocol.md, Authorization).
    logs_visible = token is not None or http.path is not None
    pages = Dashboard(api, config, logs_visible=logs_visible)
    # Pages render two at a time: a burst of page loads queues here, at no CPU, rather than
    # taking turns with the daemon's timer on every pass of the event loop.
    limiter = anyio.CapacityLimiter(PAGE_CONCURRENCY)

    def page(
        endpoint: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def limited(request: Request) -> Response:
            async with limiter:
                return await endpoint(request)

        return limited

    routes: list[BaseRoute] = [
        Route("/", page(pages.jobs), name="jobs"),
        # Job ids of [tool.scheduled] projects may hold "/" (links quote them as %2F).
        Route("/jobs/{job_id:path}", page(pages.job), name="job"),
        Route("/why/{job_id:path}", page(pages.why), name="why"),
        Route("/runs", page(pages.runs), name="runs"),
        Route("/runs/{run_id:int}", page(pages.run), name="run"),
        Route("/runs/{run_id:int}/log", page(pages.log), name="log"),
        Route("/runs/{run_id:int}/events", pages.run_events, name="run_events"),
        Route("/flows/{flow_id}", page(pages.flow), name="flow"),
        Route("/timeline", page(pages.timeline), name="timeline"),
        Route("/events", pages.events, name="events"),
        Route("/states.css", pages.states_css, name="states_css"),
        Route("/login", pages.login, name="login"),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    for factory in EXTRA_ROUTES:
        routes[:0] = factory(api, config)
    app = Starlette(
        routes=routes, exception_handlers={404: pages.not_found, 500: pages.server_error}
    )
    return Guard(app, token=token, check_host=token is None and http.path is None), pages.close


class Guard:
    """In front of every route: only GET and HEAD; the token (cookie, ``Authorization:
    Bearer`` or ``?token=`` once, which sets the cookie); on a tokenless loopback port, only
    loopback Host names, so a web page elsewhere cannot read the dashboard through DNS
    rebinding; security headers on every answer."""

    def __init__(self, app: ASGIApp, *, token: str | None, check_host: bool) -> None:
        self.app = app
        self.token = token
        self.check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *SECURITY_HEADERS]}
            await send(message)

        response = self._refusal(scope)
        if response is not None:
            await response(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)

    def _refusal(self, scope: Scope) -> Response | None:
        if scope["method"] not in ("GET", "HEAD"):
            return PlainTextResponse(
                "the dashboard is read-only\n", 405, headers={"allow": "GET, HEAD"}
            )
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if self.check_host and not _loopback_host(headers.get("host", "")):
            return PlainTextResponse(
                "this dashboard answers only to a loopback Host (127.0.0.1, ::1 or localhost)\n",
                421,
            )
        if (
            self.token is None
            or scope["path"] in PUBLIC_PATHS
            or scope["path"].startswith("/static/")
            or scope["path"] in ("/login", "/states.css")
        ):
            return None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.pop("token", None)
        if given is not None and self._valid(given):
            target = scope["path"] + (f"?{urlencode(query)}" if query else "")
            response = RedirectResponse(target, 303)
            response.set_cookie(
                COOKIE, given, httponly=True, samesite="strict", secure=False, path="/"
            )
            return response
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self._valid(auth[7:].strip()):
            return None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            cookie = SimpleCookie()
        if COOKIE in cookie and self._valid(cookie[COOKIE].value):
            return None
        if headers.get("accept", "").startswith("text/event-stream") or scope["path"].endswith(
            ("/events", "/log")
        ):
            return PlainTextResponse("a token is required\n", 401)
        return RedirectResponse("/login", 303)

    def _valid(self, given: str) -> bool:
        assert self.token is not None
        return hmac.compare_digest(given.encode(), self.token.encode())


def _loopback_host(host: str) -> bool:
    """A Host header naming this machine: ``localhost``, 127.x.x.x or ``[::1]``, any port."""
    if host.startswith("["):
        name = host[1:].partition("]")[0]
    elif host.count(":") > 1:
        name = host  # a bare IPv6 address
    else:
        name = host.partition(":")[0]
    return is_loopback(name)
