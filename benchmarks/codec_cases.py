"""JSON beside Protobuf: encode+decode cost per message, and pub-sub throughput with each codec.

The pub-sub cases run on memory, and on NATS when ``PIGEON_BENCH_NATS_URL`` (default
``nats://127.0.0.1:4222``) answers.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from benchmarks.common import Result, Stopwatch, pigeon_pubsub_seconds, throughput
from pigeon import App
from pigeon.codecs import decoder_for, encode
from pigeon.testing.conformance import shop_pb2


class Order(BaseModel):
    id: int
    sku: str
    quantity: int


SAMPLES: dict[str, Any] = {
    "json": Order(id=123456, sku="kettle-blue-1.7l", quantity=3),
    "protobuf": shop_pb2.Order(id=123456, sku="kettle-blue-1.7l", quantity=3),
}
TYPES: dict[str, Any] = {"json": Order, "protobuf": shop_pb2.Order}


def codec_cost(codec: str, count: int) -> Result:
    """Microseconds per message to encode and decode the same order."""
    sample, decode = SAMPLES[codec], decoder_for(TYPES[codec])
    with Stopwatch() as sw:
        for _ in range(count):
            body, content_type, headers = encode(sample)
            decode(body, content_type, headers)
    return Result("codec encode+decode", codec, sw.seconds / count * 1e6, "us")


async def pubsub(url: str, codec: str, count: int) -> Result:
    app = App(url)
    seconds = await pigeon_pubsub_seconds(app, "bench.codec", TYPES[codec], SAMPLES[codec], count)
    transport = urlsplit(url).scheme
    return throughput(f"{transport} pub-sub by codec", codec, count, seconds)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 1).close()
    except OSError:
        return False
    return True


async def run(count: int) -> list[Result]:
    """Codec cost and pub-sub throughput per codec, best of three."""
    results = [min((codec_cost(c, count) for _ in range(3)), key=lambda r: r.value) for c in TYPES]
    urls = ["memory://bench-codec"]
    nats_url = os.environ.get("PIGEON_BENCH_NATS_URL", "nats://127.0.0.1:4222")
    if _reachable(nats_url) and _has_transport("nats"):
        urls.append(nats_url)
    for url in urls:
        for codec in TYPES:
            runs = [await pubsub(url, codec, count) for _ in range(3)]
            results.append(max(runs, key=lambda r: r.value))
    return results


def _has_transport(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"pigeon.transports.{name}") is not None
