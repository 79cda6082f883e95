"""Names stay apart: queues, groups and durable subscriptions whose names look alike (one name
with a suffix another broker object uses, a separator moved from one part to the other, one
durable name on two subjects) are independent, each getting its own messages and no other's."""

from __future__ import annotations

import asyncio

import pytest

from pigeon import ConfigurationError, Message, Reject
from pigeon.testing.conformance.fixtures import Backend, MakeApp, known_gap, requires
from pigeon.testing.waiting import wait_dead_letters, wait_for

SETTLE = 0.3
"""Seconds to let a message that should not arrive show up, after the ones that should have."""


async def test_a_queue_named_like_another_queues_dead_letters_is_refused(
    make_app: MakeApp, uid: str
) -> None:
    """On RabbitMQ the dead letters of queue X are the queue X.dlq: a job enqueued on X.dlq was
    one of X's dead letters. Such names are refused on every transport (``reserved.py``)."""
    app = make_app()
    queue = f"{uid}.jobs"

    @app.worker(queue)
    async def fail(job: int) -> None:
        raise Reject("no")

    async with app:
        await app.enqueue(queue, 1)
        await wait_dead_letters(app, queue, 1)
        with pytest.raises(ConfigurationError, match=r"'\.dlq'"):
            await app.enqueue(f"{queue}.dlq", 2)
        letters = await app.dead_letters(queue)
        assert [letter.body for letter in letters] == [b"1"]


@pytest.mark.parametrize("suffix", [":settings", ":delayed", ":dlq", "%3A", "%"])
async def test_queues_whose_names_differ_by_a_suffix_are_independent(
    make_app: MakeApp, backend: Backend, uid: str, suffix: str, request: pytest.FixtureRequest
) -> None:
    if "%" in suffix:
        refused = "queue names may not hold '%' (ConfigurationError at the call)"
        known_gap(request, backend, {"rabbitmq": refused})
    app = make_app()
    got: dict[str, list[int]] = {"plain": [], "suffixed": []}
    queue = f"{uid}.jobs"

    @app.worker(queue)
    async def plain(job: int) -> None:
        got["plain"].append(job)

    @app.worker(queue + suffix, dead_letter=True)
    async def suffixed(job: int) -> None:
        got["suffixed"].append(job)
        raise Reject("kept")

    async with app:
        await app.enqueue(queue + suffix, 2, delay=0.05)
        await app.enqueue(queue, 1, delay=0.05)
        await wait_dead_letters(app, queue + suffix, 1)
        await wait_for(lambda: got["plain"] == [1], what="the job of the plain queue")
        await asyncio.sleep(SETTLE)
        assert await app.dead_letters(queue) == []
    assert got == {"plain": [1], "suffixed": [2]}


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("{uid}:b.c", "g"), ("b.c", "g:{uid}")),  # the separator moved from group to subject
        (("{uid}.a:b", "c"), ("{uid}.a", "b:c")),  # ... and from subject to group
    ],
)
async def test_groups_whose_names_and_subjects_share_a_separator_are_independent(
    make_app: MakeApp,
    backend: Backend,
    uid: str,
    request: pytest.FixtureRequest,
    first: tuple[str, str],
    second: tuple[str, str],
) -> None:
    app = make_app()
    got: dict[str, list[str]] = {"A": [], "B": []}
    subject_a, subject_b = first[0].format(uid=uid), second[0].format(uid=uid)

    @app.subscribe(subject_a, group=first[1].format(uid=uid))
    async def on_a(body: str) -> None:
        got["A"].append(body)

    @app.subscribe(subject_b, group=second[1].format(uid=uid))
    async def on_b(body: str) -> None:
        got["B"].append(body)

    async with app:
        await app.publish(subject_a, "to A")
        await app.publish(subject_b, "to B")
        await wait_for(lambda: bool(got["A"] and got["B"]), what="one event in each group")
        await asyncio.sleep(SETTLE)
    assert got == {"A": ["to A"], "B": ["to B"]}


async def test_one_durable_name_on_two_subjects_gives_each_its_own_events(
    make_app: MakeApp, backend: Backend, uid: str, request: pytest.FixtureRequest
) -> None:
    requires(backend, "durable")
    app = make_app()
    got: dict[str, list[str]] = {"a": [], "b": []}

    @app.subscribe(f"{uid}.a", durable=f"{uid}-audit")
    async def on_a(body: str, msg: Message) -> None:
        got["a"].append(msg.subject)

    @app.subscribe(f"{uid}.b", durable=f"{uid}-audit")
    async def on_b(body: str, msg: Message) -> None:
        got["b"].append(msg.subject)

    async with app:
        for _ in range(3):
            await app.publish(f"{uid}.a", "x")
            await app.publish(f"{uid}.b", "y")
        await wait_for(lambda: len(got["a"]) == 3 and len(got["b"]) == 3, what="three each")
        await asyncio.sleep(SETTLE)
    assert got == {"a": [f"{uid}.a"] * 3, "b": [f"{uid}.b"] * 3}
