"""pigeon's NATS client writes a request or reply at once and the rest through nats-py's flusher
(``nats/writes.py``): through an App, events and requests of many tasks still reach the server
in the order they were made. The client's own probes are in ``test_writes_wire.py``."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.aio import client as nats_client

from pigeon import App
from pigeon.transports.nats.client import TESTED_VERSIONS, registered

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


async def test_replies_to_a_burst_of_requests_go_out_together(
    nats_url: str, raw: nats.NATS, uid: str
) -> None:
    """An rpc server that reads many requests at once writes their replies in one write, as
    nats-py's flusher does, not the first at once and the rest a trip later: under load, no
    more writes (system calls, and reads for the server) than reads."""
    app = App(nats_url)

    @app.rpc(f"{uid}.echo")
    async def echo(number: int) -> int:
        return number

    async with app:
        client = app.transport.client
        counts = {"reads": 0, "writes": 0}
        parse, writer = client._ps.parse, client._transport._io_writer
        write, writelines = writer.write, writer.writelines

        async def counted_parse(data: bytes = b"") -> None:
            counts["reads"] += 1
            await parse(data)

        def counted(send):  # type: ignore[no-untyped-def]
            def wrapped(data):  # type: ignore[no-untyped-def]
                counts["writes"] += 1
                return send(data)

            return wrapped

        client._ps.parse = counted_parse
        writer.write, writer.writelines = counted(write), counted(writelines)
        requests = [raw.request(f"{uid}.echo", b"%d" % n, timeout=10) for n in range(300)]
        replies = await asyncio.gather(*requests)  # raw's flusher sends them in one write
        assert [int(reply.data) for reply in replies] == list(range(300))
        assert 0 < counts["writes"] <= counts["reads"], counts  # closing writes more: not counted
