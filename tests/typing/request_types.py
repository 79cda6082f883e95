"""Checked by mypy (tests/typing/test_typing.py), never run: what the public API's types say."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, assert_type

from pydantic import BaseModel

from pigeon import App, Depends, Message, Router, Timeout
from pigeon.middleware import CallNext


class Reserve(BaseModel):
    sku: str


class Reserved(BaseModel):
    left: int


class Audit:
    async def handle(self, message: Message, call_next: CallNext) -> Any:
        return await call_next(message)

    async def send(self, message: Message, call_next: CallNext) -> Any:
        return await call_next(message)


def get_ledger() -> list[str]:
    return []


router = Router(prefix="inventory.", middleware=[Audit()])


@router.worker("restock", middleware=[Timeout(30)])
async def restock(job: Reserve, ledger: Annotated[list[str], Depends(get_ledger)]) -> None: ...


async def calls(app: App) -> None:
    app.include(router)
    app.use(Audit())
    assert_type(await app.request("inventory.reserve", Reserve(sku="a"), reply=Reserved), Reserved)
    assert_type(await app.request("inventory.count", "a", reply=int, timeout=1.0), int)
    assert_type(await app.request("inventory.reserve", Reserve(sku="a")), Any)
    reply: Reserved = await app.request("inventory.reserve", Reserve(sku="a"), reply=Reserved)
    assert_type(reply.left, int)


app = App(middleware=[Audit()])


@app.lifespan
async def resources(app: App) -> AsyncIterator[None]:
    yield
