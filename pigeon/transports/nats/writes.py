"""How ``PigeonClient`` writes: a request or reply on the wire before its caller yields.

nats-py buffers every command (``_pending``) and wakes its flusher task, which writes the buffer
in the next trip through the event loop: a trip for a request and one for its reply. Here the
first flush since the connection last read writes the buffer at once, in the caller's step,
when the client is connected over TCP or TLS and the socket's own buffer is empty; every other
flush (a burst's later commands, a backed-up socket, websockets, a reconnect) wakes the flusher
as before, which batches them and waits on ``drain``. Order is kept: a write takes the whole
buffer, older commands first, through the transport the flusher writes to.

And ``flush()``'s ``PING`` follows the commands buffered before it: nats-py 2.16 writes it
straight to the socket, ahead of them, so its ``PONG`` could come before the server read a
``SUB`` or a publish made just before the flush.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio import client as nats_client
from nats.aio.client import Client


class WritesAtOnce(Client):
    """nats-py's ``Client`` writing as the module docstring says; ``wrote_since_read`` is
    cleared by the protocol parser on each read (``parser.PigeonParser``)."""

    def __init__(self) -> None:
        super().__init__()
        self.wrote_since_read = False
        """Whether a flush wrote at once since the connection last read: the commands of a
        burst after it wait for nats-py's flusher, which batches them."""

    async def _flush_pending(self, force_flush: bool = False) -> Any:
        if not force_flush and self._flushed_here():
            return None
        return await super()._flush_pending(force_flush)

    def _flushed_here(self) -> bool:
        """Whether this flush wrote the buffer at once (then nats-py's flusher has nothing to
        do). A publisher that never hears from the server writes once this way, then through
        the flusher."""
        if self.wrote_since_read or not self._pending or self._status != Client.CONNECTED:
            return False
        writer = getattr(self._transport, "_io_writer", None)
        if writer is None:  # not a TCP (or TLS) connection: websockets
            return False
        socket = writer.transport
        if socket.is_closing() or socket.get_write_buffer_size():
            return False
        writer.writelines(self._pending)
        self._pending = []
        self._pending_data_size = 0
        self.wrote_since_read = True
        return True

    async def _send_ping(self, future: asyncio.Future[Any] | None = None) -> None:
        if self._status != Client.CONNECTED:  # nats-py's: its reconnect forgets the PONGs owed
            await super()._send_ping(future)
            return
        if future is None:
            future = asyncio.get_running_loop().create_future()
        self._pongs.append(future)
        self._pending.append(nats_client.PING_PROTO)
        self._pending_data_size += len(nats_client.PING_PROTO)
        await self._flush_pending()
