"""A small HTTP/1.1 client for the tests, on h11 (uvicorn's own parser) over anyio: plain
requests, and server-sent events read as they come."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import h11


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@asynccontextmanager
async def _exchange(
    url: str, headers: Mapping[str, str] | None, method: str, unix: str | None
) -> AsyncIterator[tuple[h11.Connection, anyio.abc.ByteStream, h11.Response]]:
    parts = urlsplit(url)
    stream: anyio.abc.ByteStream
    if unix is not None:
        stream = await anyio.connect_unix(unix)
    else:
        assert parts.hostname is not None and parts.port is not None
        stream = await anyio.connect_tcp(parts.hostname, parts.port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        hdrs = {"host": parts.netloc or "localhost", "connection": "close", **(headers or {})}
        await stream.send(
            conn.send(h11.Request(method=method, target=target, headers=list(hdrs.items())))
        )
        await stream.send(conn.send(h11.EndOfMessage()))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive())
                continue
            assert isinstance(event, h11.Response), event
            yield conn, stream, event
            return


async def _next(conn: h11.Connection, stream: anyio.abc.ByteStream) -> Any:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        try:
            conn.receive_data(await stream.receive())
        except anyio.EndOfStream:
            conn.receive_data(b"")


async def get(
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    method: str = "GET",
    unix: str | None = None,
) -> Reply:
    with anyio.fail_after(10):
        async with _exchange(url, headers, method, unix) as (conn, stream, response):
            body = b""
            while True:
                event = await _next(conn, stream)
                if isinstance(event, h11.Data):
                    body += event.data
                else:
                    break
            return Reply(
                response.status_code, {k.decode(): v.decode() for k, v in response.headers}, body
            )


async def events(
    url: str, headers: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[str, Any]]:
    """``(event, data)`` of a server-sent event stream, data decoded from JSON."""
    async with _exchange(url, {"accept": "text/event-stream", **(headers or {})}, "GET", None) as (
        conn,
        stream,
        response,
    ):
        assert response.status_code == 200, response
        buf = ""
        while True:
            event = await _next(conn, stream)
            if not isinstance(event, h11.Data):
                return
            buf += event.data.decode()
            while "\n\n" in buf:
                block, buf = buf.split("\n\n", 1)
                name, data = "message", None
                for line in block.split("\n"):
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: "):
                        data = json.loads(line[6:])
                if data is not None:
                    yield name, data
