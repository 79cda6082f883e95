"""Routing every transport must get right as subscriptions come and go (issue 18).

Each event reaches exactly the subscriptions whose pattern matches it at the time it is published:
a subscription made or closed after other subjects were routed (and maybe cached) changes where
the next event goes, wildcards included.
"""

from __future__ import annotations

from pydantic import BaseModel

from pigeon import App, Message
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for


def _recorder(app: App, pattern: str, seen: list[str]) -> None:
    @app.subscribe(pattern)
    async def on_event(order: Order, msg: Message) -> None:
        seen.append(msg.subject)


async def test_wildcard_routes_follow_subscribe_and_close(make_app: MakeApp, uid: str) -> None:
    publisher, everything, churn = make_app(), make_app(), make_app()
    all_seen: list[str] = []
    churn_seen: list[str] = []
    _recorder(everything, f"{uid}.>", all_seen)
    _recorder(churn, f"{uid}.*.created", churn_seen)
    subjects = [f"{uid}.eu.created", f"{uid}.us.created", f"{uid}.eu.deleted"]

    async def publish_round(expected_total: int) -> None:
        for subject in subjects:
            await publisher.publish(subject, Order(id=1))
        await wait_for(lambda: len(all_seen) == expected_total, what="the catch-all subscriber")

    async with publisher, everything:
        await publish_round(3)  # routed (and cached, where a transport caches) before churn
        async with churn:
            await publish_round(6)
            await wait_for(lambda: len(churn_seen) == 2, what="the new wildcard subscriber")
        await publish_round(9)  # churn closed: the catch-all still gets every event
        late: list[str] = []
        again = make_app()
        _recorder(again, f"{uid}.eu.*", late)
        async with again:
            await publish_round(12)
            await wait_for(lambda: len(late) == 2, what="a subscriber made after the close")
    assert sorted(churn_seen) == [f"{uid}.eu.created", f"{uid}.us.created"]
    assert sorted(late) == [f"{uid}.eu.created", f"{uid}.eu.deleted"]
    assert sorted(all_seen) == sorted(subjects * 4)


async def test_each_event_reaches_only_its_subjects_subscribers(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    seen: dict[str, list[int]] = {}
    for index in range(8):
        seen[f"{index}"] = []

        @app.subscribe(f"{uid}.shard.{index}")
        async def on_shard(order: Order, key: str = f"{index}") -> None:
            seen[key].append(order.id)

    async with app:
        for n in range(16):
            await app.publish(f"{uid}.shard.{n % 8}", Order(id=n))
        await wait_for(lambda: sum(len(ids) for ids in seen.values()) == 16)
    assert seen == {f"{i}": [i, i + 8] for i in range(8)}


class Echo(BaseModel):
    name: str


async def test_a_request_reaches_the_handler_of_its_subject_among_many(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    for index in range(6):

        @app.rpc(f"{uid}.svc.{index}")
        async def answer(req: Echo, number: int = index) -> Echo:
            return Echo(name=f"{req.name}@{number}")

    async with app:
        replies = [
            await app.request(f"{uid}.svc.{n}", Echo(name="x"), reply=Echo, timeout=5)
            for n in (5, 0, 3)
        ]
    assert [r.name for r in replies] == ["x@5", "x@0", "x@3"]
