"""pigeon in one file: publish-subscribe, request-reply and a work pool on the memory transport.

Run it with ``make demo`` or ``python -m examples.quickstart``. Set ``PIGEON_URL`` to run the same
code on NATS (``nats://127.0.0.1:4222``) or RabbitMQ (``amqp://guest:guest@127.0.0.1/``).
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import BaseModel

from pigeon import App, Message, Redeliver, Reject, RemoteError, Retry


class Order(BaseModel):
    id: int
    sku: str
    quantity: int


class Reserve(BaseModel):
    sku: str
    quantity: int


class Reserved(BaseModel):
    sku: str
    left: int


class RenderInvoice(BaseModel):
    order_id: int


app = App(shutdown_timeout=5)
stock = {"kettle": 3, "teapot": 1}
events_seen = asyncio.Queue[str]()


def say(line: str) -> None:
    print(line, flush=True)


# -- publish-subscribe: every subscriber gets every event; a group shares them ---------------
@app.subscribe("orders.created")
async def audit(order: Order, msg: Message) -> None:
    say(f"  audit      saw {msg.subject} #{order.id} (message {msg.message_id[-6:]})")
    await events_seen.put("audit")


@app.subscribe("orders.*", group="billing")
async def bill(order: Order) -> None:
    say(f"  billing    charges order #{order.id}")
    await events_seen.put("billing")


# -- request-reply: typed request, typed reply, errors reach the caller ----------------------
@app.rpc("inventory.reserve")
async def reserve(req: Reserve) -> Reserved:
    left = stock.get(req.sku, 0) - req.quantity
    if left < 0:
        raise LookupError(f"only {stock.get(req.sku, 0)} {req.sku} left")
    stock[req.sku] = left
    return Reserved(sku=req.sku, left=left)


# -- work pool: retried in process, redelivered by the broker, then dead-lettered -----------
rendered = asyncio.Event()


@app.worker(
    "invoices.render",
    concurrency=4,
    retry=Retry(attempts=2, backoff=0.05),
    redeliver=Redeliver(delays=(0.2,)),
)
async def render(job: RenderInvoice, msg: Message) -> None:
    if job.order_id == 13:
        say(f"  invoices   order #13 fails (attempt {msg.attempt})")
        raise RuntimeError("the template for order 13 is broken")
    if job.order_id < 0:
        raise Reject("negative order id")
    say(f"  invoices   rendered invoice for order #{job.order_id}")
    rendered.set()


async def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)  # the story is printed; failures are expected
    async with app:
        say(f"pigeon quickstart on {app.url}\n")
        say("1. publish-subscribe: one event, two subscribers")
        await app.publish("orders.created", Order(id=1, sku="kettle", quantity=2))
        for _ in range(2):
            await asyncio.wait_for(events_seen.get(), 5)

        say("\n2. request-reply: reserve stock, then ask for too much")
        reply = await app.request(
            "inventory.reserve", Reserve(sku="kettle", quantity=2), reply=Reserved
        )
        say(f"  orders     reserved 2 kettles, {reply.left} left")
        try:
            await app.request("inventory.reserve", Reserve(sku="teapot", quantity=5))
        except RemoteError as error:
            say(f"  orders     got RemoteError {error.type}: {error.message}")

        say("\n3. work pool: two invoices, one always fails")
        await app.enqueue("invoices.render", RenderInvoice(order_id=1))
        await app.enqueue("invoices.render", RenderInvoice(order_id=13))
        await asyncio.wait_for(rendered.wait(), 5)
        letters = await wait_for_dead_letter()
        for letter in letters:
            failure = letter.failure
            assert failure is not None
            say(
                f"  dead letter {letter.decode(RenderInvoice)} after {failure.attempts} attempts: "
                f"{failure.error_type}: {failure.error_message}"
            )
    say("\ndone: every pattern ran on one App; see README.md for NATS and RabbitMQ.")


async def wait_for_dead_letter() -> list[Message]:
    async with asyncio.timeout(10):
        while not (letters := await app.dead_letters("invoices.render")):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return letters


if __name__ == "__main__":
    asyncio.run(main())
