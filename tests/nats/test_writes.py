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
