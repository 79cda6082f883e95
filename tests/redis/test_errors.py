"""Redis refusals reach users as clear ``pigeon.errors``, never as redis-py exceptions, and
never with the password in them."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from pigeon import App, BrokerError, ConfigurationError
from pigeon.testing.conformance.models import Job
from tests.brokers.nats import free_port
from tests.brokers.redis import RedisServer


async def test_an_unreachable_server_names_the_masked_url() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(BrokerError) as caught:
        await App(url).start()
    message = str(caught.value)
    assert "unreachable" in message
    assert "127.0.0.1" in message
    assert "s3cret" not in message
    assert "***" in message


async def test_wrong_password_is_a_login_error_with_the_password_masked() -> None:
    server = RedisServer("--requirepass", "right-one")
    server.start()
    try:
        with pytest.raises(BrokerError) as caught:
            await App(f"redis://:wrong-one@127.0.0.1:{server.port}/0").start()
        async with App(f"redis://:right-one@127.0.0.1:{server.port}/0") as app:
            await app.enqueue("auth.jobs", Job(1))
    finally:
        server.remove()
    message = str(caught.value)
    assert "refused the login" in message
    assert "wrong-one" not in message


async def test_a_read_only_replica_says_to_use_the_primary(own_server: RedisServer) -> None:
    replica = RedisServer("--replicaof", "127.0.0.1", str(own_server.port))
    replica.start()
    try:
        async with App(replica.url) as app:
            with pytest.raises(BrokerError, match="read-only replica"):
                await app.enqueue("replica.jobs", Job(1))
    finally:
        replica.remove()


async def test_out_of_memory_says_what_to_do(own_server: RedisServer) -> None:
    async with App(own_server.url) as app:
        await app.enqueue("oom.jobs", Job(1))
        admin = Redis.from_url(own_server.url)
        await admin.config_set("maxmemory", 1)  # less than it uses: every write is refused
        await admin.aclose()
        with pytest.raises(BrokerError, match="out of memory"):
            await app.enqueue("oom.jobs", Job(2))


def test_bad_urls_and_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="bad Redis URL"):
        App("redis://127.0.0.1:6379/not-a-db")
    with pytest.raises(ConfigurationError, match="unknown Redis option 'queue_type'"):
        App("redis://127.0.0.1:6379/0", queue_type="quorum")
    with pytest.raises(ConfigurationError, match="claim_idle"):
        App("redis://127.0.0.1:6379/0", claim_idle=0)


@pytest.mark.parametrize("value", [0.0001, 0.01, 0.999, float("inf")])
def test_claim_idle_is_1_second_or_more_and_says_why(value: float) -> None:
    with pytest.raises(ConfigurationError, match=r"claim_idle=.*1 or more.*third"):
        App("redis://127.0.0.1:6379/0", claim_idle=value)


@pytest.mark.parametrize("value", [-1, True, float("nan"), "5"])
def test_claim_idle_is_a_number_of_seconds(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"claim_idle=.*number of seconds"):
        App("redis://127.0.0.1:6379/0", claim_idle=value)


@pytest.mark.parametrize("value", [0, 0.0001, True, float("nan"), float("inf"), "1"])
def test_wait_timeout_must_be_a_finite_number_of_seconds(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"wait_timeout="):
        App("redis://127.0.0.1:6379/0", wait_timeout=value)


def test_an_unknown_url_parameter_is_a_configuration_error_at_app() -> None:
    with pytest.raises(ConfigurationError, match="unknown_thing"):
        App("redis://127.0.0.1:6379/0?unknown_thing=1")


async def test_tls_to_a_plain_server_says_the_handshake_failed(own_server: RedisServer) -> None:
    url = own_server.url.replace("redis://", "rediss://") + "?socket_connect_timeout=1"
    with pytest.raises(BrokerError, match="TLS handshake"):
        await App(url).start()
