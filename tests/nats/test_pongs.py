"""A PONG that comes after its flush gave up is that flush's answer, and the connection goes on
reading (nats-py 2.16 set the result of the flush's cancelled future: the InvalidStateError
ended its reading task, and the connection read nothing more until found stale)."""

from __future__ import annotations

import asyncio

import pytest
from nats import errors as nats_errors
from nats.aio import client as nats_client

from pigeon.testing.conformance.hostile import serving
from pigeon.testing.conformance.stalling import NATS_INFO
from pigeon.transports.nats.client import TESTED_VERSIONS, new_client

pytestmark = pytest.mark.skipif(
    nats_client.__version__ not in TESTED_VERSIONS,
    reason="nats-py's own client is used on this version",
)


async def test_a_late_pong_leaves_the_connection_reading() -> None:
    late = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answers every PING, the second (the first flush's) once ``late`` is set."""
        writer.write(NATS_INFO)
        pings = 0
        while line := await reader.readline():
            if line.startswith(b"PING"):
                pings += 1
                if pings == 2:
                    await late.wait()
                writer.write(b"PONG\r\n")
            elif line.startswith(b"SUB"):
                subject, sid = line.split()[1], line.split()[-1]
                writer.write(b"MSG " + subject + b" " + sid + b" 2\r\nhi\r\n")

    async with serving(serve) as port:
        client = new_client()
        await client.connect(f"nats://127.0.0.1:{port}", allow_reconnect=False)
        try:
            with pytest.raises(nats_errors.FlushTimeoutError):
                await client.flush(timeout=0.2)
            late.set()
            await client.flush(timeout=5)  # answered: the late PONG did not end the reading
            subscription = await client.subscribe("greetings")
            message = await subscription.next_msg(timeout=5)
            assert message.data == b"hi"
            assert client.is_connected
        finally:
            await client.close()
