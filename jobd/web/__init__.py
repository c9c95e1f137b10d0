"""The dashboard: read-only pages over HTTP, served in the daemon's event loop when the config
has an ``[http]`` table (docs/dashboard.md). Nothing here is imported otherwise."""

from __future__ import annotations

from jobd.web.server import serve_http

__all__ = ["serve_http"]
