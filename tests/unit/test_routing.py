"""Routers: prefixes, nesting, duplicate checks across routers, definition before the App."""

from __future__ import annotations

import inspect
import re

import pytest

from pigeon import App, ConfigurationError, Router
from pigeon.testing.waiting import wait_for

# defined when the module is imported, long before any App exists
orders = Router(prefix="orders.")
handled: list[str] = []


@orders.worker("render")
async def render(n: int) -> None:
    handled.append(f"render {n}")


@orders.subscribe("*.created")
async def created(n: int) -> None:
    handled.append(f"created {n}")


async def test_a_router_defined_before_the_app_serves_under_its_prefix(uid: str) -> None:
    handled.clear()
    app = App(f"memory://{uid}")
    app.include(orders)
    async with app:
        await app.enqueue("orders.render", 1)
        await app.publish("orders.eu.created", 2)
        await wait_for(lambda: sorted(handled) == ["created 2", "render 1"])
    assert [h.queue if hasattr(h, "queue") else h.subject for h in app.handlers] == [
        "orders.render",
        "orders.*.created",
    ]


async def test_routers_include_routers_and_prefixes_add_up(uid: str) -> None:
    inner, outer = Router(prefix="v1."), Router(prefix="shop.")

    @inner.rpc("price")
    async def price(sku: str) -> int:
        return len(sku)

    outer.include(inner)
    app = App(f"memory://{uid}")
    app.include(outer)
    async with app:
        assert await app.request("shop.v1.price", "abcd") == 4


def test_duplicate_rpc_subject_across_routers_is_refused() -> None:
    first, second = Router(prefix="inventory."), Router(prefix="inventory.")

    @first.rpc("reserve")
    async def reserve(n: int) -> int:
        return n

    @second.rpc("reserve")
    async def reserve_again(n: int) -> int:
        return n

    app = App("memory://unit")
    app.include(first)
    with pytest.raises(ConfigurationError, match=r"'inventory\.reserve' already has an rpc"):
        app.include(second)


def test_duplicate_worker_queue_between_app_and_router_is_refused() -> None:
    app = App("memory://unit")

    @app.worker("orders.render")
    async def render_here(n: int) -> None: ...

    with pytest.raises(ConfigurationError, match=r"'orders\.render' already has a worker"):
        app.include(orders)


def test_duplicate_within_one_router_is_refused_when_decorated() -> None:
    router = Router()

    @router.worker("jobs")
    async def one(n: int) -> None: ...

    with pytest.raises(ConfigurationError, match="already has a worker"):

        @router.worker("jobs")
        async def two(n: int) -> None: ...


def test_middleware_that_is_not_one_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="is not a middleware"):
        Router(middleware=[object()])  # type: ignore[list-item]

    class Audit:
        async def handle(self, message: object, call_next: object) -> None: ...

    with pytest.raises(ConfigurationError, match="an instance, not the class"):
        App("memory://unit", middleware=[Audit])  # type: ignore[list-item]


async def test_include_after_start_is_refused(uid: str) -> None:
    app = App(f"memory://{uid}")
    async with app:
        with pytest.raises(ConfigurationError, match="before the App starts"):
            app.include(orders)


@pytest.mark.parametrize("prefix", ["orders", "orders-", "orders.v1"])
def test_a_prefix_that_would_glue_onto_the_subject_is_refused(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"end it with a dot \('{prefix}\.'\)"):
        Router(prefix=prefix)


def test_a_dotted_prefix_is_joined_as_written() -> None:
    router = Router(prefix="orders.")

    @router.worker("render")
    async def render(n: int) -> None: ...

    app = App("memory://unit")
    app.include(router)
    assert [h.queue for h in app.handlers] == ["orders.render"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("prefix", ["a..", "orders.#.", "pigeon.delay.", "$JS.", "a b."])
def test_a_prefix_no_subject_can_start_with_is_refused_naming_the_prefix(prefix: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(f"prefix={prefix!r} cannot start")):
        Router(prefix=prefix)


def test_the_app_options_a_typo_is_matched_against_are_apps_own() -> None:
    from pigeon.transports.checks import APP_OPTIONS

    parameters = inspect.signature(App.__init__).parameters.values()
    own = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(APP_OPTIONS) == own
