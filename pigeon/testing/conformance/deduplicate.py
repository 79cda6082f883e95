"""``Deduplicate`` keys apart the handlers of one event, on every transport: each handler
deduplicates on its own, whichever middleware object and store they share."""

from __future__ import annotations

from pigeon import Deduplicate
from pigeon.deduplicate import DeduplicationStore, MemoryStore
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.middleware import store
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

__all__ = [
    "store",
    "test_one_plain_subscriber_in_two_apps_runs_in_each",
    "test_subscribers_of_one_event_sharing_a_store_each_handle_it",
]


async def test_subscribers_of_one_event_sharing_a_store_each_handle_it(
    make_app: MakeApp, uid: str, store: DeduplicationStore
) -> None:
    subject, ran = f"{uid}.created", []
    shared = Deduplicate(store, ttl=60)
    billing, notifications = make_app(), make_app(middleware=[shared])

    @billing.subscribe(subject, group="billing", middleware=[shared])
    async def charge(job: Job) -> None:
        ran.append("charge")

    @notifications.subscribe(subject)
    async def email(job: Job) -> None:
        ran.append("email")

    @notifications.subscribe(subject)
    async def audit(job: Job) -> None:
        ran.append("audit")

    async with billing, notifications:
        await billing.publish(subject, Job(1))
        await wait_for(lambda: sorted(ran) == ["audit", "charge", "email"], what="every handler")


async def test_one_plain_subscriber_in_two_apps_runs_in_each(make_app: MakeApp, uid: str) -> None:
    subject, ran = f"{uid}.broadcast", []
    shared = Deduplicate(MemoryStore(), ttl=60)
    first, second = make_app(middleware=[shared]), make_app(middleware=[shared])

    async def invalidate(job: Job) -> None:
        ran.append(job.n)

    first.subscribe(subject)(invalidate)
    second.subscribe(subject)(invalidate)
    async with first, second:
        await first.publish(subject, Job(1))
        await wait_for(lambda: ran == [1, 1], what="both replicas to get the broadcast")
