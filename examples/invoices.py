"""invoices: a work pool that renders invoices, and fails on purpose for gift cards.

Jobs on the ``invoices.render`` queue are stored by the broker until a worker acks them; run
several replicas and each job is rendered by one of them. Gift cards have no invoice template, so
their job always fails, and the demo shows the whole failure path:

1. ``Retry``: pigeon calls the handler again in process, with exponential backoff;
2. ``Redeliver``: then hands the job back to the broker, which delivers it again after a delay;
3. ``dead_letter=True``: then moves it to the queue's dead letters, with the error and the number
   of attempts. ``pigeon dlq show invoices.render`` lists them, ``pigeon dlq replay`` retries them.

The policies are options of the worker's decorator, so ``make_router`` builds the router with the
policies it is given; ``router`` has the shop's.

    PIGEON_URL=nats://127.0.0.1:4222 python -m examples.invoices
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from examples.models import SUBJECTS, RenderInvoice
from examples.story import say, serve
from pigeon import App, Depends, Message, Redeliver, Retry, Router

RETRY = Retry(attempts=2, backoff=0.2)
"""Two calls per delivery, 0.2 s apart (plus jitter)."""
REDELIVER = Redeliver(delays=(1.0, 5.0))
"""Two redeliveries, after 1 s then 5 s: six calls in all before the job is dead-lettered."""
NO_TEMPLATE = {"gift-card"}
"""The products whose invoice cannot be rendered."""


class TemplateMissing(Exception):
    """The invoice of this product cannot be rendered (the error the dead letters record)."""


@dataclass
class Invoices:
    """The orders whose invoice was rendered, and every failed attempt as (order, attempt)."""

    rendered: list[str] = field(default_factory=list)
    failed: list[tuple[str, int]] = field(default_factory=list)


async def open_records(app: App) -> AsyncIterator[dict[str, Invoices]]:
    """The lifespan: keep what was rendered and what failed, as app.state.invoices."""
    yield {"invoices": Invoices()}


def invoices_of(app: App) -> Invoices:
    """The records of the App serving the job, as a dependency."""
    invoices: Invoices = app.state.invoices
    return invoices


def make_router(retry: Retry = RETRY, redeliver: Redeliver = REDELIVER) -> Router:
    """The invoice worker, with these policies: the demo and the tests pass shorter delays."""
    router = Router()
    router.lifespan(open_records)
    attempts = total_attempts(retry, redeliver)

    @router.worker(
        SUBJECTS.invoices_render,
        concurrency=4,
        retry=retry,
        redeliver=redeliver,
        dead_letter=True,
    )
    async def render(
        job: RenderInvoice, msg: Message, invoices: Annotated[Invoices, Depends(invoices_of)]
    ) -> None:
        if job.sku in NO_TEMPLATE:
            invoices.failed.append((job.order_id, msg.attempt))
            next_step = what_next(msg.attempt, retry, redeliver)
            say(
                "invoices",
                f"order {job.order_id}: attempt {msg.attempt}/{attempts} failed, {next_step}",
            )
            raise TemplateMissing(f"no invoice template for {job.sku}")
        invoices.rendered.append(job.order_id)
        say("invoices", f"order {job.order_id}: invoice rendered for {job.customer}")

    return router


def total_attempts(retry: Retry, redeliver: Redeliver) -> int:
    """How many calls a job that always fails gets before it is dead-lettered."""
    return retry.attempts * (len(redeliver.delays) + 1)


def what_next(attempt: int, retry: Retry, redeliver: Redeliver) -> str:
    """What pigeon does after the ``attempt``-th call of a job failed, in words."""
    if attempt % retry.attempts:
        return "pigeon retries it in process"
    delay = redeliver.delay_after(attempt // retry.attempts)
    if delay is not None:
        return f"the broker redelivers it in {delay:g}s"
    return "no retries left: pigeon dead-letters it"


router = make_router()
"""The invoice worker with the shop's policies."""

app = App()
app.include(router)

if __name__ == "__main__":
    serve(app)
