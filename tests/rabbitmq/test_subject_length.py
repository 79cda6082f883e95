"""A handler's subject over AMQP's 255-byte routing key is refused where it is written, with the
``ConfigurationError`` that publish and request raise, never the AMQP library's ``ValueError``
at start."""

from __future__ import annotations

from typing import Any

import pytest

from pigeon import App, ConfigurationError, Router
from tests.conftest import MakeApp

FORMS: dict[str, tuple[str, dict[str, Any]]] = {
    "subscribe": ("subscribe", {}),
    "group": ("subscribe", {"group": "g"}),
    "durable": ("subscribe", {"durable": "d"}),
    "rpc": ("rpc", {}),
    "wildcard-rpc": ("rpc", {}),
    "worker": ("worker", {}),
}


def _subject(uid: str, size: int, form: str) -> str:
    """A subject of ``size`` bytes (``wildcard-rpc``: ending in ``*``)."""
    if form == "wildcard-rpc":
        return f"{uid}." + "a" * (size - len(uid) - 3) + ".*"
    return f"{uid}." + "a" * (size - len(uid) - 1)


def _register(target: App | Router, form: str, subject: str) -> None:
    kind, options = FORMS[form]

    async def handler(n: int) -> int:
        return n

    getattr(target, kind)(subject, **options)(handler)


@pytest.mark.parametrize("size", [256, 1024])
@pytest.mark.parametrize("form", list(FORMS))
async def test_a_subject_over_255_bytes_is_refused_at_decoration(
    make_app: MakeApp, uid: str, form: str, size: int
) -> None:
    app = make_app()
    subject = _subject(uid, size, form)
    with pytest.raises(ConfigurationError, match="255 bytes AMQP allows") as caught:
        _register(app, form, subject)
    assert subject[:40] in str(caught.value)
    assert not app.handlers


@pytest.mark.parametrize("form", list(FORMS))
async def test_a_subject_over_255_bytes_is_refused_when_its_router_is_included(
    make_app: MakeApp, uid: str, form: str
) -> None:
    router = Router()
    _register(router, form, _subject(uid, 300, form))  # a router knows no transport
    with pytest.raises(ConfigurationError, match="255 bytes AMQP allows"):
        make_app().include(router)


@pytest.mark.parametrize("form", list(FORMS))
async def test_a_subject_of_255_bytes_is_served(make_app: MakeApp, uid: str, form: str) -> None:
    app = make_app()
    _register(
        app, form, _subject(uid, 255, form)[:200] if form == "worker" else _subject(uid, 255, form)
    )
    async with app:
        assert app.ready
