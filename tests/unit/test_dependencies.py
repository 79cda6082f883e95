"""Dependencies: sync, async and generator dependencies, nested, per message, with cleanup; a
graph that cannot be resolved is refused when the handler is decorated."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import pytest

from pigeon import App, ConfigurationError, Depends, Message, RemoteError, Router
from pigeon.testing.waiting import wait_for

log: list[str] = []


class Ledger:
    def __init__(self, owner: str) -> None:
        self.owner = owner


def settings() -> dict[str, str]:
    log.append("settings")
    return {"owner": "acme"}


async def ledger(
    config: Annotated[dict[str, str], Depends(settings)], msg: Message
) -> AsyncIterator[Ledger]:
    log.append(f"open {msg.headers.get('tenant', '-')}")
    try:
        yield Ledger(config["owner"])
    except ValueError:
        log.append("saw ValueError")
        raise
    finally:
        log.append("close")


def audit(config: Annotated[dict[str, str], Depends(settings)]) -> Iterator[str]:
    yield "audit"
    log.append("audit done")


def state_of(app: App) -> str:
    return str(app.state.name)


async def test_dependencies_resolve_per_message_and_clean_up(uid: str) -> None:
    log.clear()
    router = Router(prefix="billing.")

    @router.rpc("charge")
    async def charge(
        amount: int,
        book: Annotated[Ledger, Depends(ledger)],
        trail: Annotated[str, Depends(audit)],
        name: Annotated[str, Depends(state_of)],
    ) -> str:
        log.append("handler")
        if amount < 0:
            raise ValueError("negative")
        return f"{book.owner} {trail} {name} {amount}"

    app = App(f"memory://{uid}")
    app.state.name = "shop"
    app.include(router)
    async with app:
        reply = await app.request("billing.charge", 5, reply=str, headers={"tenant": "t1"})
        assert reply == "acme audit shop 5"
        assert log == ["settings", "open t1", "handler", "audit done", "close"]
        log.clear()
        with pytest.raises(RemoteError, match="negative"):
            await app.request("billing.charge", -1)
    # the handler's exception is thrown in at each generator's yield: audit's code after it
    # does not run, ledger's except and finally do
    assert log == ["settings", "open -", "handler", "saw ValueError", "close"]


async def test_a_sync_handler_gets_its_dependencies(uid: str) -> None:
    app = App(f"memory://{uid}")
    got: list[str] = []

    @app.worker("jobs")
    def work(n: int, config: Annotated[dict[str, str], Depends(settings)]) -> None:
        got.append(config["owner"])

    async with app:
        await app.enqueue("jobs", 1)
        await wait_for(lambda: got == ["acme"])


def needs(thing) -> int:  # type: ignore[no-untyped-def]
    return 1


def test_a_dependency_parameter_without_annotation_is_refused() -> None:
    async def handler(n: int, value: Annotated[int, Depends(needs)]) -> None: ...

    with pytest.raises(ConfigurationError, match="parameter 'thing' of dependency"):
        App("memory://unit").subscribe("x")(handler)


def ping(other: Annotated[int, Depends(lambda: 0)]) -> int:
    return other


def pong(other: Annotated[int, Depends(ping)]) -> int:
    return other


def test_a_cycle_is_refused_naming_it() -> None:
    # ping -> pong -> ping: rebuild ping's annotation to point at pong, making a cycle
    ping.__annotations__["other"] = Annotated[int, Depends(pong)]

    async def handler(n: int, value: Annotated[int, Depends(ping)]) -> None: ...

    with pytest.raises(ConfigurationError, match="cycle ping -> pong -> ping"):
        Router().worker("x")(handler)


def test_a_parameter_that_is_no_dependency_needs_a_default() -> None:
    async def handler(n: int, db: Ledger) -> None: ...

    with pytest.raises(ConfigurationError, match="'db' has no default"):
        App("memory://unit").worker("x")(handler)
