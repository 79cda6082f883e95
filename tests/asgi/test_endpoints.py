"""``App.asgi()``: each endpoint's status and body, called in process through httpx."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import yaml
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from pigeon import App
from pigeon.metrics import PrometheusMetrics
from pigeon.testing.waiting import wait_for
from tests.asgi.conftest import Client


class Order(BaseModel):
    id: str
    quantity: int


def shop(uid: str) -> App:
    app = App(f"memory://user:secret@{uid}")

    @app.subscribe("orders.created")
    async def notify(order: Order) -> None:
        """Tell the customer."""

    @app.rpc("inventory.reserve")
    async def reserve(order: Order) -> int:
        return 3

    @app.worker("invoices.render")
    async def render(order: Order) -> None: ...

    return app


async def test_healthz_answers_whether_or_not_the_app_runs(uid: str, client: Client) -> None:
    app = shop(uid)
    async with client(app.asgi()) as http:
        stopped = await http.get("/healthz")
        async with app:
            running = await http.get("/healthz")
    assert (stopped.status_code, stopped.text) == (200, "ok\n")
    assert (running.status_code, running.text) == (200, "ok\n")


async def test_readyz_says_what_is_not_ready(uid: str, client: Client) -> None:
    app = shop(uid)
    async with client(app.asgi()) as http:
        before = await http.get("/readyz")
        async with app:
            during = await http.get("/readyz")
        after = await http.get("/readyz")
    assert before.status_code == 503
    assert before.json()["ready"] is False
    assert before.json()["broker"] == {"url": f"memory://user:***@{uid}", "connected": False}
    assert [(h["pattern"], h["address"], h["subscribed"]) for h in before.json()["handlers"]] == [
        ("subscribe", "orders.created", False),
        ("rpc", "inventory.reserve", False),
        ("worker", "invoices.render", False),
    ]
    assert during.status_code == 200
    assert during.json()["ready"] is True
    assert during.json()["broker"]["connected"] is True
    assert all(h["subscribed"] for h in during.json()["handlers"])
    assert [h["name"] for h in during.json()["handlers"]] == ["notify", "reserve", "render"]
    assert after.status_code == 503
    assert "secret" not in before.text + during.text + after.text


def samples(text: str) -> dict[tuple[str, str, str], float]:
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("pattern", ""), sample.labels.get("subject", ""))
            found[key] = sample.value
    return found


async def test_metrics_count_what_the_app_handled(uid: str, client: Client) -> None:
    app = shop(uid)
    asgi = app.asgi()
    async with client(asgi) as http, app:
        await app.publish("orders.created", Order(id="1", quantity=1))
        await app.publish("orders.created", Order(id="2", quantity=1))
        assert await app.request("inventory.reserve", Order(id="3", quantity=1)) == 3

        async def counted() -> bool:
            text = (await http.get("/metrics")).text
            key = ("pigeon_messages_processed_total", "subscribe", "orders.created")
            return samples(text).get(key) == 2

        await wait_for(counted, what="two events counted on /metrics")
        response = await http.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    assert samples(response.text)[("pigeon_messages_processed_total", "rpc", "inventory.reserve")]
    observers = [o for o in app.middleware if isinstance(o, PrometheusMetrics)]
    assert len(observers) == 1, "asgi() added one PrometheusMetrics"
    app.asgi()
    assert len([o for o in app.middleware if isinstance(o, PrometheusMetrics)]) == 1


async def test_metrics_count_the_events_dropped(uid: str, client: Client) -> None:
    """asgi() serves ``pigeon_events_dropped_total`` as ``pigeon run`` does, with no more setup:
    here the events a plain subscription held when its App closed."""
    app = App(f"memory://{uid}", shutdown_timeout=0)
    seen: list[Order] = []

    @app.subscribe("orders.created", max_pending=5)
    async def notify(order: Order) -> None:
        seen.append(order)
        await asyncio.Event().wait()  # cut off by close

    asgi = app.asgi()
    async with client(asgi) as http:
        async with app:
            for n in range(3):
                await app.publish("orders.created", Order(id=str(n), quantity=1))
            await wait_for(lambda: len(seen) == 1, what="the first event held")
        text = (await http.get("/metrics")).text
        app.asgi()  # a second application on the same metrics counts them once
        again = (await http.get("/metrics")).text
    dropped = ("pigeon_events_dropped_total", "", "orders.created")
    assert samples(text).get(dropped) == 2, text
    assert samples(again).get(dropped) == 2


async def test_metrics_of_an_app_already_running_say_how_to_get_them(
    uid: str, client: Client
) -> None:
    app = shop(uid)
    async with app, client(app.asgi()) as http:
        response = await http.get("/metrics")
        assert (await http.get("/healthz")).status_code == 200, "the rest is served"
    assert response.status_code == 404
    assert "call it before starting the App" in response.text
    assert "app.use()" in response.text


async def test_asyncapi_json_and_yaml_are_the_same_document(uid: str, client: Client) -> None:
    app = shop(uid)
    async with client(app.asgi(title="the shop")) as http:
        as_json = await http.get("/asyncapi.json")
        as_yaml = await http.get("/asyncapi.yaml")
    assert as_json.headers["content-type"] == "application/json"
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    document: dict[str, Any] = as_json.json()
    assert yaml.safe_load(as_yaml.text) == document
    assert document["info"]["title"] == "the shop"
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {"orders.created", "inventory.reserve", "invoices.render"} <= addresses
    assert "secret" not in as_json.text


async def test_the_page_embeds_the_document_and_its_own_scripts(uid: str, client: Client) -> None:
    app = shop(uid)

    @app.subscribe("notes")
    async def note(text: str) -> None:
        """A note that says </script><script>alert(1)</script>."""

    async with client(app.asgi()) as http:
        page = await http.get("/asyncapi")
        script = await http.get("/static/asyncapi/index.js")
        style = await http.get("/static/asyncapi/default.min.css")
        license_text = await http.get("/static/asyncapi/LICENSE")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.text.count("</script>") == 3, "the handler's docstring cannot close the script"
    inline = re.search(r'type="application/json">(.*?)</script>', page.text, re.S)
    assert inline is not None
    assert json.loads(inline.group(1))["operations"]["subscribe.notes"]["summary"].startswith("A")
    assert 'src="/static/asyncapi/index.js"' in page.text
    assert "http://" not in page.text.split("<script")[0], "nothing is loaded from elsewhere"
    assert script.status_code == style.status_code == 200
    assert "AsyncApiStandalone" in script.text[:1000]
    assert "Apache License" in license_text.text


async def test_mounted_in_fastapi_the_page_points_under_the_mount(uid: str, client: Client) -> None:
    app = shop(uid)
    web = FastAPI()
    web.mount("/pigeon", app.asgi())
    async with client(web) as http, app:
        ready = await http.get("/pigeon/readyz")
        page = await http.get("/pigeon/asyncapi")
        script = await http.get("/pigeon/static/asyncapi/index.js")
        outside = await http.get("/readyz")
    assert ready.status_code == 200
    assert 'src="/pigeon/static/asyncapi/index.js"' in page.text
    assert script.status_code == 200
    assert outside.status_code == 404


async def test_metrics_of_an_app_served_by_another_asgi_server_carry_its_backlog(
    uid: str, client: Client
) -> None:
    """Under FastAPI or uvicorn no ``pigeon run`` samples the backlog: a scrape reads it."""
    app = App(f"memory://{uid}")
    started, release = asyncio.Event(), asyncio.Event()

    @app.worker("invoices.render", concurrency=1)
    async def render(order: Order) -> None:
        started.set()
        await release.wait()

    fastapi = FastAPI()
    fastapi.mount("/pigeon", app.asgi())
    async with client(fastapi) as http, app:
        for n in range(3):
            await app.enqueue("invoices.render", Order(id=str(n), quantity=1))
        await started.wait()
        text = (await http.get("/pigeon/metrics")).text
        release.set()
    gauges = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get("queue") == "invoices.render"
    }
    assert gauges["pigeon_queue_ready"] == 2
    assert gauges["pigeon_queue_unacked"] == 1
    assert gauges["pigeon_dead_letters"] == 0
