"""invoices: a work pool that renders invoices, and fails on purpose for gift cards.

Jobs on the ``invoices.render`` queue are stored by the broker until a worker acks them; run
several replicas and each job is rendered by one of them. Gift cards have no invoice template, so
their job always fails, and the demo shows the whole failure path:

1. ``Retry``: pigeon calls the handler again in process, with exponential backoff;
2. ``Redeliver``: then hands the job back to the broker, which delivers it again after a delay;
3. ``dead_letter=True``: then moves it to the queue's dead letters, with the error and the number
   of attempts. ``pigeon dlq show invoices.render`` lists them, ``pigeon dlq replay`` retries them.

    PIGEON_URL=nats://127.0.0.1:4222 python -m examples.invoices
"""

from __future__ import annotations

from dataclasses import dataclass, field

from examples.models import SUBJECTS, RenderInvoice, Subjects
from examples.story import say, serve
from pigeon import App, Message, Redeliver, Retry

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


def register(
    app: App,
    subjects: Subjects = SUBJECTS,
    retry: Retry = RETRY,
    redeliver: Redeliver = REDELIVER,
) -> Invoices:
    """Add the invoice worker to ``app``; returns its state. The demo passes shorter delays."""
    invoices = Invoices()
    attempts = total_attempts(retry, redeliver)

    @app.worker(
        subjects.invoices_render,
        concurrency=4,
        retry=retry,
        redeliver=redeliver,
        dead_letter=True,
    )
    async def render(job: RenderInvoice, msg: Message) -> None:
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

    return invoices


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


app = App()
invoices = register(app)

if __name__ == "__main__":
    serve(app)
