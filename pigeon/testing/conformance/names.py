"""Names that differ stay apart on every transport: a group is named by its subject and its name
together, durable names that differ in punctuation are two subscriptions, and names as long as a
transport allows work (brokers derive their own, length-limited names from them)."""

from __future__ import annotations

import pytest

from pigeon import App
from pigeon.testing.conformance.fixtures import Backend, MakeApp, known_gap, requires
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for

EVENTS = 20


async def _publish(app: App, subject: str, count: int = EVENTS) -> None:
    for n in range(count):
        await app.publish(subject, Order(id=n))


def _collect(
    app: App, subject: str, ids: list[int], *, group: str | None = None, durable: str | None = None
) -> None:
    """Subscribe ``app`` to ``subject`` (in ``group``, as ``durable``): each event's id into
    ``ids``."""

    @app.subscribe(subject, group=group, durable=durable)
    async def on_event(order: Order) -> None:
        ids.append(order.id)


async def test_one_group_name_on_two_patterns_is_two_groups(make_app: MakeApp, uid: str) -> None:
    """Both patterns match each event: each group gets every one (NATS merged the queue groups
    of one name across subscriptions)."""
    app = make_app()
    star: list[int] = []
    rest: list[int] = []

    _collect(app, f"{uid}.*", star, group="billing")
    _collect(app, f"{uid}.>", rest, group="billing")

    async with app:
        await _publish(app, f"{uid}.created")
        await wait_for(lambda: len(star) == EVENTS and len(rest) == EVENTS, what="both groups")
    assert sorted(star) == sorted(rest) == list(range(EVENTS))


async def test_a_group_named_like_an_internal_one_gets_every_event(
    make_app: MakeApp, uid: str
) -> None:
    """A group whose name is the one rpc servers share (``pigeon-rpc`` on NATS) on a subject that
    an rpc server also serves: the server never takes the group's events."""
    app = make_app()
    events: list[int] = []

    @app.rpc(f"{uid}.reserve")
    async def reserve(order: Order) -> Order:
        return order

    _collect(app, f"{uid}.reserve", events, group="pigeon-rpc")

    async with app:
        await _publish(app, f"{uid}.reserve")
        await wait_for(lambda: len(events) == EVENTS, what="every event to the group")
        assert await app.request(f"{uid}.reserve", Order(id=7), reply=Order) == Order(id=7)
    assert sorted(events) == list(range(EVENTS))


async def test_a_group_name_with_spaces_and_colons(make_app: MakeApp, uid: str) -> None:
    """Group names are the user's: whitespace and punctuation are no protocol separators."""
    members = [make_app(), make_app()]
    ids: list[int] = []
    for app in members:

        @app.subscribe(f"{uid}.billing", group="billing team: eu")
        async def bill(order: Order) -> None:
            ids.append(order.id)

    async with members[0], members[1]:
        await _publish(members[0], f"{uid}.billing")
        await wait_for(lambda: len(ids) == EVENTS, what="every event once")
    assert sorted(ids) == list(range(EVENTS)), "each event handled once by the group"


async def test_groups_whose_subject_and_name_meet_at_a_colon_stay_apart(
    make_app: MakeApp, uid: str
) -> None:
    """``a:b`` + ``c`` and ``a`` + ``b:c``: a broker name of subject and group joined by ``:``
    would be one queue for both, and each would get some of the other's events."""
    app = make_app()
    seen: dict[str, list[int]] = {"first": [], "second": []}

    _collect(app, f"{uid}.a:b", seen["first"], group="c")
    _collect(app, f"{uid}.a", seen["second"], group="b:c")

    async with app:
        await _publish(app, f"{uid}.a:b")
        await _publish(app, f"{uid}.a")
        total = lambda: len(seen["first"]) + len(seen["second"]) == 2 * EVENTS  # noqa: E731
        await wait_for(total, what="every event")
    assert sorted(seen["first"]) == sorted(seen["second"]) == list(range(EVENTS))


async def test_durable_names_that_differ_in_punctuation_are_two_subscriptions(
    make_app: MakeApp, uid: str, backend: Backend
) -> None:
    requires(backend, "durable")
    app = make_app()
    dotted: list[int] = []
    underscored: list[int] = []

    _collect(app, f"{uid}.ev", dotted, durable=f"{uid}-audit.v1")
    _collect(app, f"{uid}.ev", underscored, durable=f"{uid}-audit_v1")

    async with app:
        await _publish(app, f"{uid}.ev")
        done = lambda: len(dotted) == EVENTS and len(underscored) == EVENTS  # noqa: E731
        await wait_for(done, what="every event to each durable subscription")
    assert sorted(dotted) == sorted(underscored) == list(range(EVENTS))


async def test_one_durable_name_on_two_subjects_is_two_subscriptions(
    make_app: MakeApp, uid: str, backend: Backend
) -> None:
    """Events only on the first subject: the second subscription gets none of them."""
    requires(backend, "durable")
    app = make_app()
    seen: dict[str, list[int]] = {"a": [], "b": []}

    _collect(app, f"{uid}.a", seen["a"], durable=f"{uid}-audit")
    _collect(app, f"{uid}.b", seen["b"], durable=f"{uid}-audit")

    async with app:
        await _publish(app, f"{uid}.a")
        total = lambda: len(seen["a"]) + len(seen["b"]) == EVENTS  # noqa: E731
        await wait_for(total, what="every event")
    assert seen == {"a": list(range(EVENTS)), "b": []}


def _long(uid: str, size: int) -> str:
    """A subject of ``size`` bytes starting with ``uid``."""
    return f"{uid}." + ".".join(["segment"] * 40)[: size - len(uid) - 1].rstrip(".")


async def test_a_durable_subscription_on_a_long_subject(
    make_app: MakeApp, uid: str, backend: Backend
) -> None:
    """255 bytes, the longest subject every transport takes (AMQP's routing keys), and a durable
    name of 187 (RabbitMQ's queue names take 200)."""
    requires(backend, "durable")
    subject = _long(uid, 255)
    assert len(subject) >= 250
    app = make_app()
    received: list[int] = []

    _collect(app, subject, received, durable=f"{uid}-long-" + "d" * 170)

    async with app:
        await _publish(app, subject, 3)
        await wait_for(lambda: len(received) == 3, what="events on a long subject")


async def test_a_durable_name_equal_to_a_work_queues_or_a_groups_name(
    make_app: MakeApp, uid: str, backend: Backend
) -> None:
    """A durable subscription named like a work queue of the App, or like the queue RabbitMQ
    gives a group (``<subject>:<group>``): each keeps its own messages, and none fails to start
    (RabbitMQ named a durable subscription's queue by the durable name alone)."""
    requires(backend, "durable")
    app = make_app()
    jobs, grouped = f"{uid}.jobs", f"{uid}.ev:billing"
    seen: dict[str, list[int]] = {"worker": [], "group": [], "durable": [], "twin": []}

    @app.worker(jobs)
    async def work(order: Order) -> None:
        seen["worker"].append(order.id)

    _collect(app, f"{uid}.ev", seen["group"], group="billing")
    _collect(app, f"{uid}.other", seen["durable"], durable=jobs)
    _collect(app, f"{uid}.another", seen["twin"], durable=grouped)

    async with app:
        for n in range(EVENTS):
            await app.enqueue(jobs, Order(id=n))
            await app.publish(f"{uid}.ev", Order(id=n))
            await app.publish(f"{uid}.other", Order(id=n))
            await app.publish(f"{uid}.another", Order(id=n))
        done = lambda: all(len(ids) == EVENTS for ids in seen.values())  # noqa: E731
        await wait_for(done, what="every message to its own handler")
    assert all(sorted(ids) == list(range(EVENTS)) for ids in seen.values()), seen


async def _star_and_plus(app: App, uid: str, seen: dict[str, list[int]]) -> None:
    """Publish on ``<uid>.created`` and ``<uid>.+``; wait for ``star`` to get both, ``plus`` the
    second only."""
    await _publish(app, f"{uid}.created")
    await _publish(app, f"{uid}.+")
    done = lambda: len(seen["star"]) == 2 * EVENTS and len(seen["plus"]) == EVENTS  # noqa: E731
    await wait_for(done, what="every event to each subscription of its subject")


async def test_a_wildcard_and_a_subject_spelled_like_its_queue_stay_apart(
    make_app: MakeApp, uid: str
) -> None:
    """RabbitMQ writes ``*`` as ``+`` in queue names: the groups and rpc servers of ``<uid>.*``
    and of the literal subject ``<uid>.+`` had one queue, each taking some of the other's
    messages."""
    app, plus_server = make_app(), make_app()
    seen: dict[str, list[int]] = {"star": [], "plus": []}

    _collect(app, f"{uid}.*", seen["star"], group="g")
    _collect(app, f"{uid}.+", seen["plus"], group="g")

    @app.rpc(f"{uid}.*")
    async def star(order: Order) -> str:
        return "star"

    @plus_server.rpc(f"{uid}.+")
    async def plus(order: Order) -> str:
        return "plus"

    async with app, plus_server:
        await _star_and_plus(app, uid, seen)
        for n in range(10):
            assert await app.request(f"{uid}.created", Order(id=n), reply=str) == "star"
    assert (len(seen["star"]), len(seen["plus"])) == (2 * EVENTS, EVENTS)


SHARED_STREAM_GAP = {
    "nats": "one durable name on two subjects that one stream stores is one consumer name in "
    "that stream: refused at start (DeclarationConflict), saying to name each its own",
}


async def test_one_durable_name_on_a_wildcard_and_a_subject_spelled_like_its_queue(
    make_app: MakeApp, uid: str, backend: Backend, request: pytest.FixtureRequest
) -> None:
    requires(backend, "durable")
    known_gap(request, backend, SHARED_STREAM_GAP)
    app = make_app()
    seen: dict[str, list[int]] = {"star": [], "plus": []}

    _collect(app, f"{uid}.*", seen["star"], durable="d")
    _collect(app, f"{uid}.+", seen["plus"], durable="d")

    async with app:
        await _star_and_plus(app, uid, seen)
    assert (len(seen["star"]), len(seen["plus"])) == (2 * EVENTS, EVENTS)
