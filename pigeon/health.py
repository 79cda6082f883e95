"""A health endpoint: HTTP 200 once every handler is subscribed and the connection is up."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from pigeon import listening

READY = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nready\n"
NOT_READY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 10\r\n\r\nnot ready\n"
)


async def serve_health(
    is_ready: Callable[[], bool], port: int, host: str = "0.0.0.0", option: str = "--health-port"
) -> asyncio.Server:
    """Answer every HTTP request on ``port`` with 200 ``ready`` or 503 ``not ready``.

    ``is_ready`` is asked per request. Returns the running server; close it to stop. Raises
    ``ConfigurationError`` when the port cannot be bound, saying to choose another ``option``.
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            writer.write(READY if is_ready() else NOT_READY)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    listener = listening.bind(host, port, "health", option)
    return await asyncio.start_server(answer, sock=listener)
