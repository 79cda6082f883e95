from typing import Any

import pytest
from pydantic import BaseModel

from pigeon import App, ConfigurationError, Message


class Order(BaseModel):
    id: int


def test_first_parameter_needs_an_annotation() -> None:
    app = App("memory://unit")

    async def handler(order) -> None:  # type: ignore[no-untyped-def]
        pass

    with pytest.raises(ConfigurationError, match="annotate its first parameter 'order'"):
        app.subscribe("orders.created")(handler)


def test_a_handler_needs_a_body_parameter() -> None:
    app = App("memory://unit")

    async def handler() -> None:
        pass

    with pytest.raises(ConfigurationError, match="no body parameter"):
        app.worker("jobs")(handler)


def test_message_alone_is_not_a_body() -> None:
    app = App("memory://unit")

    async def handler(msg: Message) -> None:
        pass

    with pytest.raises(ConfigurationError, match="message type"):
        app.subscribe("x")(handler)


def test_extra_parameters_need_defaults() -> None:
    app = App("memory://unit")

    async def handler(order: Order, other: int) -> None:
        pass

    with pytest.raises(ConfigurationError, match="'other' has no default") as caught:
        app.subscribe("x")(handler)
    assert "Depends" in str(caught.value)  # the way to have it filled in
    assert "app: App" in str(caught.value)  # and to get the App itself


def test_a_type_pydantic_cannot_validate_is_refused_at_decoration() -> None:
    app = App("memory://unit")

    class Opaque:
        pass

    async def handler(body: Opaque) -> None:
        pass

    with pytest.raises(ConfigurationError, match="cannot decode"):
        app.subscribe("x")(handler)


def test_second_rpc_on_a_subject_is_refused() -> None:
    app = App("memory://unit")

    @app.rpc("inventory.reserve")
    async def first(order: Order) -> int:
        return 1

    with pytest.raises(ConfigurationError, match="already has an rpc handler"):

        @app.rpc("inventory.reserve")
        async def second(order: Order) -> int:
            return 2


def test_second_worker_on_a_queue_is_refused() -> None:
    app = App("memory://unit")

    @app.worker("jobs")
    async def first(order: Order) -> None: ...

    with pytest.raises(ConfigurationError, match="already has a worker"):
        app.worker("jobs")(first)


@pytest.mark.parametrize("subject", ["orders..created", "orders created", ""])
def test_bad_subjects_are_refused_at_decoration(subject: str) -> None:
    app = App("memory://unit")
    with pytest.raises(ConfigurationError):
        app.subscribe(subject)


@pytest.mark.parametrize("concurrency", [0, -1, 1.5])
def test_concurrency_must_be_positive(concurrency: Any) -> None:
    with pytest.raises(ConfigurationError, match="concurrency"):
        App("memory://unit").worker("jobs", concurrency=concurrency)


async def test_publishing_to_a_wildcard_subject_is_refused() -> None:
    async with App("memory://unit") as app:
        with pytest.raises(ConfigurationError, match="wildcard"):
            await app.publish("orders.*", Order(id=1))


async def test_handlers_cannot_be_added_to_a_running_app() -> None:
    async with App("memory://unit") as app:
        with pytest.raises(ConfigurationError, match="before the App starts"):

            @app.subscribe("late")
            async def late(order: Order) -> None: ...
