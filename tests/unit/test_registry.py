"""A transport written outside pigeon plugs in by URL scheme."""

from __future__ import annotations

import pytest

from pigeon import App, ConfigurationError
from pigeon.transports import registry
from pigeon.transports.memory import MemoryTransport


class ThirdPartyTransport(MemoryTransport):
    """Stands for a transport of another package: the memory one under another scheme."""


@pytest.fixture
def schemes(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    known = dict(registry.SCHEMES)
    monkeypatch.setattr(registry, "SCHEMES", known)
    return known


async def test_a_registered_scheme_serves_apps(schemes: dict[str, str]) -> None:
    registry.register_transport("mybroker", f"{__name__}:ThirdPartyTransport")
    app = App("mybroker://tests-registry")

    @app.rpc("echo")
    async def echo(n: int) -> int:
        return n

    async with app:
        assert isinstance(app.transport, ThirdPartyTransport)
        assert await app.request("echo", 7) == 7


@pytest.mark.parametrize(
    ("scheme", "target"),
    [("My-Broker", "pkg:Cls"), ("mybroker", "pkg.Cls"), ("mybroker", ":Cls"), ("", "pkg:Cls")],
)
def test_a_bad_registration_says_what_to_give(
    schemes: dict[str, str], scheme: str, target: str
) -> None:
    with pytest.raises(ConfigurationError, match="give a lower-case scheme"):
        registry.register_transport(scheme, target)
    assert scheme not in schemes
