"""How ``PigeonClient`` writes: a request or reply on the wire before its caller yields.

nats-py buffers every command (``_pending``) and wakes its flusher task, which writes the buffer
in the next trip through the event loop: a trip for a request and one for its reply. Here the
first flush since the connection last read writes the buffer at once, in the caller's step,
when the client is connected over TCP or TLS and the socket's own buffer is empty; every other
flush (a burst's later commands, a backed-up socket, websockets, a reconnect) wakes the flusher
as before, which batches them and waits on ``drain``. Order is kept: a write takes the whole
buffer, older commands first, through the transport the flusher writes to.

A command whose header block was built already (``wire.plain_block``, the bytes nats-py makes
of those headers) is queued without a coroutine (``queue_block``): nats-py's ``publish`` goes
three deep (``publish``, ``_send_publish``, ``_send_command``), and those coroutines took
~0.65 us of a 3.4 us event publish (docs/benchmarks.md, "Session 12").

And ``flush()``'s ``PING`` follows the commands buffered before it: nats-py 2.16 writes it
straight to the socket, ahead of them, so its ``PONG`` could come before the server read a
``SUB`` or a publish made just before the flush.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats import errors
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

    def check_subject(self, subject: str) -> None:
        """nats-py's ``publish`` check of ``subject`` (``BadSubjectError``: empty, or with
        whitespace), unless the client was told to skip it."""
        if not self._skip_subject_validation:
            nats_client._validate_subject(subject)

    def queue_block(self, subject: str, payload: bytes, block: bytes) -> bool:
        """Queue what ``publish(subject, payload, headers=...)`` sends, its header block,
        ``block``, built by the caller, its subject checked by the caller (``check_subject``):
        the same command, counted as sent, raising the same errors for the connection's state
        and the payload's size. Returns whether to ``await flush_queued()``, where nats-py's
        ``publish`` flushes (the buffer over ``pending_size``, or the flusher idle)."""
        command = self._block_command(subject, "", payload, block)
        self._pending.append(command)
        self._pending_data_size += len(command)
        over = 0 < self._max_pending_size < self._pending_data_size
        return over or (self._flush_queue is not None and self._flush_queue.empty())

    async def flush_queued(self) -> None:
        """nats-py's ``publish`` after it queued its command: the buffer over ``pending_size``
        waits for the flusher to write it; an idle flusher is woken."""
        if 0 < self._max_pending_size < self._pending_data_size:
            await self._flush_pending(force_flush=True)
        if self._flush_queue is not None and self._flush_queue.empty():
            await self._flush_pending()

    def _block_command(self, subject: str, reply: str, payload: bytes, block: bytes) -> bytes:
        """The ``HPUB`` command with a header block built already (subjects checked), counted
        as sent; raises what nats-py's ``publish`` raises for the connection's state."""
        size = len(payload)
        if self._status != Client.CONNECTED or size > self._max_payload:
            self._check_status(size)  # raises, unless reconnecting with room in the buffer
        stats = self.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += size
        head = len(block)
        return b"".join(
            (f"HPUB {subject} {reply} {head} {head + size}\r\n".encode(), block, payload, b"\r\n")
        )

    def _check_status(self, size: int) -> None:
        """nats-py's ``publish`` checks of the connection's state and of a payload of ``size``
        bytes, the state read once instead of through four properties."""
        status = self._status
        if status == Client.CLOSED:
            raise errors.ConnectionClosedError
        if status == Client.DRAINING_PUBS:
            raise errors.ConnectionDrainingError
        if status != Client.CONNECTED and status != Client.DRAINING_SUBS:  # not is_connected
            pending = self._max_pending_size
            if pending <= 0 or size + self._pending_data_size > pending:
                raise errors.OutboundBufferLimitError
        if size > self._max_payload:
            raise errors.MaxPayloadError

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
