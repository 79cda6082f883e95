"""An App with ``service=`` is a NATS service: the discovery protocol (``$SRV.PING``, ``$SRV.INFO``,
``$SRV.STATS``) lists its rpc handlers as endpoints, read here as the ``nats micro`` CLI reads
them, with nats-py's ``nats.micro`` types."""

from __future__ import annotations

import json
from typing import Any

import nats
import pytest
from nats.micro.service import ServiceInfo

from pigeon import App, ConfigurationError, RemoteError
from pigeon.testing.conformance.models import Reserve, Reserved


async def discover(nats_url: str, verb: str, name: str) -> dict[str, Any]:
    """Ask ``$SRV.<verb>.<name>`` as the ``nats micro`` CLI does; the first answer."""
    nc = await nats.connect(nats_url)
    try:
        msg = await nc.request(f"$SRV.{verb}.{name}", b"", timeout=5)
    finally:
        await nc.close()
    answer: dict[str, Any] = json.loads(msg.data)
    return answer


async def test_rpc_handlers_answer_service_discovery(nats_url: str, uid: str) -> None:
    name = f"inventory-{uid}"
    app = App(nats_url, service=name, version="1.2.0")

    @app.rpc(f"{uid}.reserve")
    async def reserve(req: Reserve) -> Reserved:
        if req.quantity > 3:
            raise LookupError("only 3 left")
        return Reserved(sku=req.sku, left=3 - req.quantity)

    @app.rpc(f"{uid}.release")
    async def release(req: Reserve) -> None: ...

    async with app:
        ping = await discover(nats_url, "PING", name)
        info = ServiceInfo.from_dict(await discover(nats_url, "INFO", name))
        await app.request(f"{uid}.reserve", Reserve(sku="a", quantity=1))
        await app.request(f"{uid}.reserve", Reserve(sku="a", quantity=2))
        with pytest.raises(RemoteError):
            await app.request(f"{uid}.reserve", Reserve(sku="a", quantity=9))
        stats = await discover(nats_url, "STATS", name)
    assert (ping["type"], ping["name"], ping["version"]) == (
        "io.nats.micro.v1.ping_response",
        name,
        "1.2.0",
    )
    assert info.id == ping["id"]
    assert [(e.subject, e.queue_group) for e in info.endpoints] == [
        (f"{uid}.reserve", "pigeon-rpc"),
        (f"{uid}.release", "pigeon-rpc"),
    ]
    reserve_stats = stats["endpoints"][0]
    assert stats["type"] == "io.nats.micro.v1.stats_response"
    assert (reserve_stats["num_requests"], reserve_stats["num_errors"]) == (3, 1)
    assert reserve_stats["last_error"] == "only 3 left"
    assert reserve_stats["processing_time"] > 0
    assert stats["endpoints"][1]["num_requests"] == 0


async def test_a_service_app_and_a_plain_app_share_the_requests(nats_url: str, uid: str) -> None:
    served: list[str] = []
    apps = [App(nats_url, service=f"inventory-{uid}"), App(nats_url)]
    for index, app in enumerate(apps):

        @app.rpc(f"{uid}.who")
        async def who(n: int, index: int = index) -> int:
            served.append("service" if index == 0 else "plain")
            return n

    async with apps[0], apps[1]:
        for n in range(40):
            await apps[1].request(f"{uid}.who", n)
    assert set(served) == {"service", "plain"}, "one queue group: both replicas serve"


def test_service_name_must_suit_the_protocol(nats_url: str) -> None:
    with pytest.raises(ConfigurationError, match="service='inventory service'"):
        App(nats_url, service="inventory service")
    with pytest.raises(ConfigurationError, match="semantic"):
        App(nats_url, service="inventory", version="one")
