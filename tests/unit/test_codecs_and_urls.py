import re
from dataclasses import dataclass

import pytest
from pydantic import BaseModel

from pigeon import App, BrokerError, ConfigurationError, DecodeError, EncodeError
from pigeon.codecs import JSON, codec_for, decoder_for
from pigeon.transports.urls import mask_url


class Order(BaseModel):
    id: int


@dataclass
class Point:
    x: int
    y: int


async def test_encoding_an_unsupported_object_names_its_type() -> None:
    class Unencodable:
        pass

    async with App("memory://unit-codec") as app:
        with pytest.raises(EncodeError, match="Unencodable"):
            await app.publish("x", Unencodable())


def test_json_round_trips_models_dataclasses_and_builtins() -> None:
    assert JSON.decode(JSON.encode(Order(id=1)), Order) == Order(id=1)
    assert JSON.decode(JSON.encode(Point(1, 2)), Point) == Point(1, 2)
    assert JSON.decode(JSON.encode({"a": [1, 2]}), dict[str, list[int]]) == {"a": [1, 2]}


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"id": "x"}', "application/json", "id"),
        (b"\xff\xfe", "application/json", "Invalid JSON"),
        (b'{"id": 1}', "application/x-unknown", "unknown content type"),
    ],
)
def test_decode_errors_say_what_is_wrong(body: bytes, content_type: str, expected: str) -> None:
    decode = decoder_for(Order)
    with pytest.raises(DecodeError, match=expected):
        decode(body, content_type, {})


def test_missing_content_type_means_json() -> None:
    assert decoder_for(Order)(b'{"id": 3}', "", {}) == Order(id=3)
    assert codec_for("") is JSON


def test_str_bodies_must_be_utf8() -> None:
    with pytest.raises(DecodeError, match="UTF-8"):
        decoder_for(str)(b"\xff", "text/plain", {})


def test_unknown_scheme_lists_the_supported_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"memory://.*nats://.*amqp://"):
        App("kafka://localhost:9092")


def test_url_defaults_to_pigeon_url_then_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIGEON_URL", raising=False)
    assert App().url == "memory://"
    monkeypatch.setenv("PIGEON_URL", "memory://from-env")
    assert App().url == "memory://from-env"


def test_passwords_are_masked() -> None:
    assert mask_url("amqp://guest:secret@host:5672/") == "amqp://guest:***@host:5672/"
    assert mask_url("nats://host:4222") == "nats://host:4222"


def test_memory_transport_takes_no_client_options() -> None:
    expected = (
        "unknown memory:// option 'heartbeat'; pigeon's are ['max_message_size', 'queue_capacity']"
    )
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        App("memory://unit", heartbeat=5)
    with pytest.raises(ConfigurationError, match=r"max_message_size=0: give a whole number, 1 or"):
        App("memory://unit", max_message_size=0)


async def test_sending_before_start_says_how_to_start() -> None:
    with pytest.raises(BrokerError, match="async with app"):
        await App("memory://unit").publish("x", 1)
