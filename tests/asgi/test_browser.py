"""A real browser: ``pigeon docs serve examples.shop:app`` opened in headless Chromium (Debian's
``chromium``) renders the shop's channels and messages, with nothing loaded from elsewhere."""

from __future__ import annotations

import asyncio
import html
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from pigeon.testing.waiting import wait_for
from tests.brokers.nats import free_port

ROOT = Path(__file__).parents[2]
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
)


def chromium() -> str:
    """Debian's chromium; missing, the test skips locally and fails in CI (``.ci/run`` installs
    it)."""
    found = shutil.which("chromium")
    if found is None:
        reason = "no chromium: apt-get install -y chromium"
        if os.environ.get("CI") or os.environ.get("PIGEON_REQUIRE_BROKERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


async def dump_dom(browser: str, url: str) -> str:
    """The DOM of ``url`` once its scripts ran, as Chromium serialises it."""
    with tempfile.TemporaryDirectory(prefix="pigeon-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), 45)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    return out.decode()


def rendered_text(dom: str) -> str:
    """What the page shows: the DOM without its scripts and tags."""
    without_scripts = re.sub(r"<script.*?</script>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", without_scripts))


async def test_the_asyncapi_page_renders_the_shop_in_chromium() -> None:
    browser = chromium()
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pigeon", "docs", "serve", "examples.shop:app"),
        *("--port", str(port), "--title", "pigeon shop"),
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        async def serving() -> bool:
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{url}/asyncapi.json")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(serving, timeout=20, what="pigeon docs serve to answer")
        dom = await dump_dom(browser, f"{url}/asyncapi")
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), 20)

    shown = rendered_text(dom)
    assert 'id="operations"' in dom, "the React component rendered the document"
    for channel in ("inventory.reserve", "orders.created", "invoices.render"):
        assert channel in shown
    for message in ("Reserve", "Reserved", "Order", "RenderInvoice"):
        assert f'id="message-{message}"' in dom
    for operation in ("rpc.inventory.reserve", "subscribe.orders.created.notify"):
        assert operation in shown, "each handler of a shared subject is its own operation"
    assert "pigeon shop" in shown
