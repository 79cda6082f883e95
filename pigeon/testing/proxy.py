"""A loopback TCP proxy in front of a broker that can fall silent: ``pause`` stops passing bytes
either way while every connection stays open (a broker that hangs, a stalled network path: the
client sees nothing fail, it just gets no answer); ``resume`` passes them on again, those held
meanwhile first."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PORTS = {"nats": 4222, "amqp": 5672, "redis": 6379}


class SilenceableProxy:
    """Forwards each connection made to ``port`` to ``host:target``; see the module docstring."""

    def __init__(self, host: str, target: int) -> None:
        self._host, self._target = host, target
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    def pause(self) -> None:
        """Pass nothing on from now on, either way; the connections stay open."""
        self._flowing.clear()

    def resume(self) -> None:
        """Pass bytes on again."""
        self._flowing.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.resume()
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection(self._host, self._target)
        except OSError:
            writer.close()
            return
        self._writers += [writer, upstream]
        pipes = (self._pipe(reader, upstream), self._pipe(upstream_reader, writer))
        await asyncio.gather(*pipes, return_exceptions=True)  # one cut at close ends both

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def proxied(url: str) -> AsyncIterator[tuple[str, SilenceableProxy]]:
    """A ``SilenceableProxy`` in front of the one server of ``url``, and ``url`` through it."""
    parts = urlsplit(url)
    assert parts.hostname is not None, url
    proxy = SilenceableProxy(parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])
    await proxy.start()
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    try:
        yield urlunsplit(parts._replace(netloc=netloc)), proxy
    finally:
        await proxy.close()
