"""pigeon's nats-py client writes a trip's first flush at once and the rest through nats-py's
flusher: commands still reach the server in the order they were made, and a server that stops
reading still makes publishers wait instead of the client buffering without end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio import client as nats_client

from pigeon import App
from pigeon.transports.nats.client import TESTED_VERSIONS, new_client, registered

pytestmark = pytest.mark.skipif(
    nats_client.__version__ not in TESTED_VERSIONS,
    reason="nats-py's own client is used on this version",
)

PUBLISHERS = 4
EACH = 1500


async def test_events_and_requests_of_many_tasks_arrive_in_each_task_s_order(
    nats_url: str, raw: nats.NATS, uid: str
) -> None:
    """Tasks publishing at once, some yielding between events and some not, with requests in
    between: every event arrives, each task's in the order it published them."""
    seen: dict[int, list[int]] = {n: [] for n in range(PUBLISHERS)}
    all_seen = asyncio.Event()

    async def record(msg: nats.aio.msg.Msg) -> None:
        publisher, number = map(int, msg.data.split(b":"))
        seen[publisher].append(number)
        if sum(map(len, seen.values())) == PUBLISHERS * EACH:
            all_seen.set()

    await raw.subscribe(f"{uid}.events", cb=record)
    await registered(raw)  # nats-py's own flush may pass its SUB
    app = App(nats_url)

    @app.rpc(f"{uid}.echo")
    async def echo(text: str) -> str:
        return text

    async def publish(publisher: int) -> None:
        for number in range(EACH):
            await app.publish(f"{uid}.events", f"{publisher}:{number}")
            if publisher % 2 and number % 7 == 0:
                await asyncio.sleep(0)  # the next event is a new trip's first flush
            if number % 300 == 0:
                assert await app.request(f"{uid}.echo", "ping", reply=str) == "ping"

    async with app:
        await asyncio.gather(*(publish(n) for n in range(PUBLISHERS)))
        await asyncio.wait_for(all_seen.wait(), 30)
    assert seen == {n: list(range(EACH)) for n in range(PUBLISHERS)}


@contextlib.asynccontextmanager
async def stalled_server() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A NATS server on a free loopback port that greets a client, answers its first ``PING``,
    then reads nothing more (the client's socket fills up) until the event yielded with its URL
    is set; then it reads to the end."""
    resume = asyncio.Event()
    served: list[asyncio.Task[None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served.append(asyncio.current_task())  # type: ignore[arg-type]
        writer.write(
            b'INFO {"server_id":"stalled","version":"2.10.0","max_payload":1048576,'
            b'"headers":true,"proto":1}\r\n'
        )
        while b"PING" not in await reader.readline():
            pass
        writer.write(b"PONG\r\n")
        await writer.drain()
        await resume.wait()
        while await reader.read(1024 * 1024):
            pass
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"nats://127.0.0.1:{port}", resume
    finally:
        resume.set()
        await asyncio.wait_for(asyncio.gather(*served), 10)  # until the client closed
        server.close()
        await server.wait_closed()


async def test_a_server_that_stops_reading_makes_publishers_wait() -> None:
    """Against a server that reads nothing, publishing stops (the publisher waits for the
    buffered commands to be written) before the client holds more than nats-py's pending limit
    and the socket's high-water mark: it does not buffer without end."""
    async with stalled_server() as (url, resume):
        client = new_client()
        await client.connect(url, allow_reconnect=False, pending_size=1024 * 1024)
        socket = client._transport._io_writer.transport
        payload = b"x" * 4096
        published, most_held, stopping = 0, 0, False

        async def publish_until_stopped() -> None:
            nonlocal published, most_held
            while not stopping:
                await client.publish("stalled.events", payload)
                published += 1
                most_held = max(most_held, socket.get_write_buffer_size())
                if published % 16 == 0:
                    await asyncio.sleep(0)  # a new trip through the event loop

        publisher = asyncio.create_task(publish_until_stopped())
        limit = 64 * 1024 * 1024 // len(payload)  # far past any buffer, if it never waited
        while not publisher.done() and published < limit:
            before = published
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(publisher), 1)
            if published == before:
                break  # it waits
        stopping = True
        resume.set()
        await asyncio.wait_for(publisher, 30)
        await client.close()
    assert published < limit, f"{published} publishes of 4 KiB never waited"
    assert most_held <= 3 * 1024 * 1024, f"{most_held} bytes held in the socket's buffer"
