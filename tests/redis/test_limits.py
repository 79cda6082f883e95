"""A message over the transport's ``max_message_size`` is refused at send with
``MessageTooLarge``, in every pattern, instead of being lost on the way (Redis drops a Pub/Sub
subscriber whose output buffer overflows) or taking the receiving App down."""

from __future__ import annotations

import pytest

from pigeon import App, ConfigurationError, MessageTooLarge, RemoteError
from pigeon.testing.waiting import wait_for
from pigeon.transports.redis.transport import DEFAULTS

LIMIT = 10_000
BIG = "x" * (LIMIT + 1)


async def test_every_send_over_the_limit_is_refused_and_the_app_goes_on(
    redis_url: str, uid: str
) -> None:
    app = App(redis_url, max_message_size=LIMIT)
    events: list[str] = []

    @app.subscribe(f"{uid}.events")
    async def on_event(body: str) -> None:
        events.append(body)

    @app.rpc(f"{uid}.big-reply")
    async def big_reply(body: str) -> str:
        return BIG

    async with app:
        sends = {
            "publish": app.publish(f"{uid}.events", BIG),
            "enqueue": app.enqueue(f"{uid}.jobs", BIG),
            "request": app.request(f"{uid}.big-reply", BIG),
        }
        for send in sends.values():
            with pytest.raises(MessageTooLarge, match="max_message_size=10000"):
                await send
        with pytest.raises(RemoteError) as caught:
            await app.request(f"{uid}.big-reply", "small", timeout=5)
        assert caught.value.type == "MessageTooLarge"
        await app.publish(f"{uid}.events", "small")
        await wait_for(lambda: events == ["small"], what="a small event after the big ones")
        assert app.transport.connected


async def test_the_default_limit_stays_under_redis_pubsub_output_buffer_limits(
    redis_url: str, uid: str
) -> None:
    assert DEFAULTS["max_message_size"] <= 8 * 1024 * 1024  # the soft limit of pubsub clients
    async with App(redis_url) as app:
        with pytest.raises(MessageTooLarge):
            await app.publish(f"{uid}.events", "x" * (DEFAULTS["max_message_size"] + 1))


@pytest.mark.parametrize("value", [0, -1, "big", 1.5])
def test_a_bad_max_message_size_is_a_configuration_error(redis_url: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match="max_message_size"):
        App(redis_url, max_message_size=value)
