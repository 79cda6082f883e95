"""``pigeon.transports.addresses``: pigeon and each client library read a broker URL alike, or
``App()`` refuses it. No broker needed: these run everywhere, the conformance suite's
``misread_urls`` runs the same kinds through each transport."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from redis.asyncio.connection import parse_url
from yarl import URL

from pigeon import App, ConfigurationError
from pigeon.transports.addresses import servers_of
from pigeon.transports.urls import mask_url

SECRET = "S3cretPW"

READ_ALIKE = [
    "amqp://user:p@ss@127.0.0.1:5672/",  # '@': every client takes the host after the last one
    "amqp://user:p:ss@127.0.0.1:5672/vhost",  # ':': the password runs from the first
    "amqps://user:p%23s%2Fs%40@rabbit.example:5671/",
    "amqp://user:pw@[::1]:5672/",
    "amqp://guest:guest@h1,h2:5673,h3/",
    "amqp://guest:s3c,r3t@h1,h2/",
    "nats://user:p@ss@127.0.0.1:4222",
    "nats://token@h1:4222,nats://h2:4223",
    "tls://h1",
    "nats://h1:4222,h2",
    "redis://:p@ss@127.0.0.1:6379/0",
    "rediss://user:p%25w@r.example/1",
]

MISREAD = [
    (f"amqp://user:{SECRET}#{SECRET}@127.0.0.1:5672/", "'#'"),
    (f"amqp://user:p@ss/{SECRET}@127.0.0.1:5672/", "'/'"),
    (f"amqps://user:{SECRET}?{SECRET}@h:5671/", "'?'"),
    (f"amqp://user:{SECRET}%g1@h/", "'%'"),
    (f"amqp://user:{SECRET}@h:65536/", "port"),
    (f"amqp://user:{SECRET}@h1,h2:x/", "port"),
    (f"amqp://user:{SECRET}@h1,/", "no host"),
    (f"tls://user:{SECRET}#{SECRET}@h:4222", "'#'"),
    (f"nats://h:1,tls://{SECRET}%20@h:8080", "'%'"),
    (f"nats://h:1,amqp://user:{SECRET}@h:2", "another broker"),
    (f"nats://h:1,ws://{SECRET}@h:2", "websocket"),
    (f"tls://user:{SECRET}\n{SECRET}@h", "control"),
    (f"rediss://:{SECRET}\\{SECRET}@h/0", "'\\\\'"),
    (f"redis://:{SECRET}]{SECRET}@h/0", "']'"),
    (f"redis://user:{SECRET}@h:0/0", "port"),
    (f"redis://user:{SECRET}@h!x/0", "host"),
    (f"redis://user:{SECRET}@[::g]:1/0", "IPv6"),
    (f"amqp://user:{SECRET}/", "port"),  # '@host' forgotten: the password looks like a port
    # an '@' after '/', '?' or '#' may end a password or sit in a path or query: refused
    (f"amqp://user:p@{SECRET}?{SECRET}@127.0.0.1:5672/vh", "%40"),
    (f"nats://{SECRET}?{SECRET}@127.0.0.1:4222", "%40"),
    (f"redis://default:{SECRET}@2?{SECRET}@127.0.0.1:6379", "%40"),
    ("redis://127.0.0.1:6379/0?prefix=team@a:", "%40"),
    ("amqp://guest:guest@127.0.0.1:5672/look@at", "%40"),
]


def _client_read(url: str) -> tuple[str, int | None]:
    """The host and port each client library reads from ``url``; they must agree."""
    yarl = URL(url)
    split = urlsplit(url)
    host, port = yarl.host or "", yarl.port if split.port is not None else None
    assert (split.hostname or "", split.port) == (host.lower(), port)
    if url.startswith("redis"):
        redis = parse_url(url)
        assert (redis.get("host", ""), redis.get("port")) == (host, port)
    return host, port


@pytest.mark.parametrize("url", READ_ALIKE)
def test_pigeon_and_the_clients_read_the_same_hosts_and_credentials(url: str) -> None:
    for server in servers_of(url):
        assert (server.host, server.port) == _client_read(server.url)
        split = urlsplit(server.url)
        masked = mask_url(server.url)
        assert masked.endswith(server.url.rpartition("@")[2])
        if split.password and split.password != split.username:
            assert URL(server.url).password == unquote(split.password)
            assert unquote(split.password) not in masked


@pytest.mark.parametrize("url", READ_ALIKE)
def test_a_url_read_alike_is_taken(url: str) -> None:
    App(url)


@pytest.mark.parametrize(("url", "named"), MISREAD)
def test_a_url_read_otherwise_is_refused_naming_the_fault_not_the_secret(
    url: str, named: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        App(url)
    text = str(raised.value)
    assert named in text
    assert SECRET not in text
    assert SECRET not in repr(raised.value.__cause__ or raised.value.__context__)


def test_a_server_without_its_at_sign_has_its_port_masked() -> None:
    assert mask_url(f"amqp://user:{SECRET}/") == "amqp://user:***/"
    assert mask_url("amqp://h:5672/") == "amqp://h:5672/"
    assert mask_url("amqp://[::1]/") == "amqp://[::1]/"


def test_the_rabbitmq_transport_connects_to_the_hosts_it_names() -> None:
    transport = App("amqp://user:p@ss@h1,[::1]:5673/v").transport
    assert transport.url == "amqp://user:***@h1,[::1]:5673/v"
    assert transport._hosts == [("h1", 5672), ("::1", 5673)]  # type: ignore[attr-defined]
