"""Numeric transport options are checked at ``App(...)``: a bad one is a ``ConfigurationError``
saying the range, never a client error at start or a silent "unlimited"."""

from __future__ import annotations

import pytest

from pigeon import App
from pigeon.errors import ConfigurationError

NATS = "nats://127.0.0.1:1"
AMQP = "amqp://guest:guest@127.0.0.1:1/"
REDIS = "redis://127.0.0.1:1/0"

BAD: list[tuple[str, str, object]] = [
    *[
        (NATS, name, value)
        for name in ("pending_msgs_limit", "pending_bytes_limit")
        for value in (0, -1, True, 1.5, "abc", None)
    ],
    (NATS, "ack_wait", True),
    (NATS, "replicas", True),
    (NATS, "reconnect_patience", 0),
    *[(AMQP, "event_prefetch", value) for value in (0, 70_000, True, 1.5, "5")],
    (AMQP, "max_message_size", 0),
    (AMQP, "connect_timeout", -1),
    (AMQP, "reconnect_patience", "10"),
    (REDIS, "max_connections", True),
    (REDIS, "claim_idle", True),
    ("memory://", "queue_capacity", True),
]


@pytest.mark.parametrize(("url", "name", "value"), BAD)
def test_a_bad_number_fails_at_app(url: str, name: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=name):
        App(url, **{name: value})


@pytest.mark.parametrize(
    ("url", "name", "value"),
    [
        (NATS, "pending_msgs_limit", 1),
        (NATS, "pending_bytes_limit", 1024),
        (AMQP, "event_prefetch", 65_535),
        (AMQP, "connect_timeout", 0.5),
    ],
)
def test_a_good_number_is_taken(url: str, name: str, value: object) -> None:
    App(url, **{name: value})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, -0.5, True, "10", None])
def test_a_bad_shutdown_timeout_fails_at_app(value: object) -> None:
    with pytest.raises(ConfigurationError, match="shutdown_timeout"):
        App("memory://", shutdown_timeout=value)  # type: ignore[arg-type]
    app = App("memory://")
    with pytest.raises(ConfigurationError, match="shutdown_timeout"):
        app.shutdown_timeout = value  # type: ignore[assignment]
    assert app.shutdown_timeout == 10


@pytest.mark.parametrize("value", [0, 0.5, 30])
def test_a_shutdown_timeout_of_0_or_more_is_taken(value: float) -> None:
    assert App("memory://", shutdown_timeout=value).shutdown_timeout == value
