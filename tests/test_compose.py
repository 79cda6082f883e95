"""The compose demo's files hold together: they parse, run example modules that import, on
pinned images, start orders once the services it talks to are ready, and publish documented ports.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

from pigeon import App
from pigeon.cli import cli, load_app

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
RABBITMQ_OVERRIDE = ROOT / "docker-compose.rabbitmq.yml"
REDIS_OVERRIDE = ROOT / "docker-compose.redis.yml"
SHOP = {"orders", "inventory", "billing", "notifications", "invoices"}
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$")


def services(path: Path) -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(path.read_text())
    found: dict[str, dict[str, Any]] = document["services"]
    return found


@pytest.fixture(params=[COMPOSE, RABBITMQ_OVERRIDE, REDIS_OVERRIDE], ids=lambda path: path.name)
def compose_file(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


def test_every_shop_service_runs_an_example_that_imports() -> None:
    shop = {name: svc for name, svc in services(COMPOSE).items() if "build" in svc}
    assert set(shop) == SHOP
    for name, service in shop.items():
        command = service["command"]
        if command[:2] == ["python", "-m"]:
            app = importlib.import_module(command[2]).app
        else:
            assert command[:2] == ["pigeon", "run"], f"{name}: python -m or pigeon run"
            options = typer.main.get_command(cli).commands["run"].make_context("run", command[2:])
            app = load_app(options.params["target"])
        assert isinstance(app, App), f"{name} serves an App"
        assert f"examples.{name}" in command[2], f"{name} runs its own module"


def test_orders_starts_once_every_other_service_is_ready() -> None:
    found = services(COMPOSE)
    for name in SHOP - {"orders"}:
        assert "--health-port" in found[name]["command"]
        assert "healthcheck" in found[name]
        assert found["orders"]["depends_on"][name] == {"condition": "service_healthy"}


@pytest.mark.parametrize(
    ("override_file", "broker"), [(RABBITMQ_OVERRIDE, "rabbitmq"), (REDIS_OVERRIDE, "redis")]
)
def test_a_broker_override_changes_only_existing_services(override_file: Path, broker: str) -> None:
    base = services(COMPOSE)
    override = services(override_file)
    assert set(override) - set(base) == {broker}
    assert set(override) - {broker} == SHOP


def test_every_image_is_pinned_to_a_version(compose_file: Path) -> None:
    images = [svc["image"] for svc in services(compose_file).values() if "image" in svc]
    assert images
    for image in images:
        assert PINNED.match(image), f"{compose_file.name}: pin {image!r} to a version"


def test_the_dockerfile_base_image_is_pinned() -> None:
    bases = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert bases
    for image in bases:
        assert PINNED.match(image), f"Dockerfile: pin {image!r} to a version"


def test_every_published_port_is_documented(compose_file: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    for name, service in services(compose_file).items():
        for mapping in service.get("ports", []):
            host_port = str(mapping).split(":")[0]
            row = rf"^\| `{host_port}` \| {name}\b"
            assert re.search(row, readme, re.MULTILINE), (
                f"README.md: add {name}'s port to its table"
            )


def test_shop_services_wait_for_a_healthy_broker(compose_file: Path) -> None:
    found = services(compose_file)
    for name in SHOP:
        broker = urlsplit(found[name]["environment"]["PIGEON_URL"]).hostname
        assert broker in found, f"{name}: PIGEON_URL names {broker!r}, not a service of the file"
        assert "healthcheck" in found[broker]
        assert found[name]["depends_on"][broker] == {"condition": "service_healthy"}


def test_the_services_talk_to_nats_by_default() -> None:
    for name, service in services(COMPOSE).items():
        if name in SHOP:
            assert service["environment"]["PIGEON_URL"].startswith("nats://")
    assert "--jetstream" in services(COMPOSE)["nats"]["command"]
