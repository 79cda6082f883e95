"""``redis://`` and ``rediss://``: every pattern on Redis Streams and Pub/Sub, through redis-py's
asyncio client. The connection and a thin composition of the role modules (made on connect, with
the client); ``docs/transports/redis.md`` maps each pattern onto Redis keys.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)

from pigeon.errors import BrokerError, ConfigurationError
from pigeon.transports.addresses import servers_of
from pigeon.transports.base import QueueSettings, Subscription, Transport
from pigeon.transports.checks import seconds, unknown_options, whole_number
from pigeon.transports.redis.calls import Calls
from pigeon.transports.redis.channels import Channels
from pigeon.transports.redis.claim_idle import CLAIM_IDLE_FLOOR, MIN_CLAIM_IDLE
from pigeon.transports.redis.errors import CLIENT_ERRORS, translate
from pigeon.transports.redis.events import RedisEvents
from pigeon.transports.redis.jobs import RedisJobs
from pigeon.transports.redis.requests import RedisRequests
from pigeon.transports.redis.scripts import Scripts
from pigeon.transports.redis.topology import Declarer, Keys
from pigeon.transports.slow import SlowConsumers
from pigeon.transports.urls import mask_url

log = logging.getLogger("pigeon")

DEFAULTS: dict[str, Any] = {
    "prefix": "pigeon:",
    "claim_idle": None,
    "event_maxlen": 10_000,
    "request_maxlen": 10_000,
    "wait_replicas": 0,
    "wait_timeout": 1.0,
    "max_connections": 128,
    "max_message_size": 8 * 1024 * 1024,
}
"""pigeon's own options of this transport, with their defaults (see ``RedisTransport``)."""

SOCKET_TIMEOUT = 5.0
"""Seconds a command waits for Redis's answer (and a connect for the server) unless the App or
its URL sets ``socket_timeout`` (``socket_connect_timeout``): pigeon's own default, whatever
redis-py's is (none before redis-py 6)."""

TIMEOUTS = ("socket_timeout", "socket_connect_timeout")
"""redis-py's options that bound a wait for the server, in seconds: never unbounded here."""

CLIENT_OPTIONS = frozenset(inspect.signature(Redis.__init__).parameters) - {
    "self",
    "max_connections",
}
"""Options that go to redis-py as they are."""

URL_PARAMETERS = frozenset(
    name
    for kind in (AbstractConnection, Connection, SSLConnection, UnixDomainSocketConnection)
    for name in inspect.signature(kind.__init__).parameters
) | {"connection_class", "prefix"}
"""Query parameters a Redis URL may have: redis-py's connection options, and pigeon's prefix."""

_CLIENT_ONLY = frozenset(
    {"connection_pool", "single_connection_client", "auto_close_connection_pool"}
    | {"event_dispatcher", "legacy_responses", "maint_notifications_config"}
)
"""Options of ``redis.asyncio.Redis`` that are not its connections' (and so not the pool's)."""


class RedisTransport:
    """Redis through redis-py; see ``pigeon.transports.base.Transport`` for the contract.

    ``url``: ``redis://[user:password@]host[:port][/db][?prefix=...]``, or ``rediss://`` for TLS.
    pigeon's options:

    - ``prefix`` of every key and channel (default ``"pigeon:"``, or the URL's ``prefix``
      parameter); Apps that share a queue or subject must share it;
    - ``claim_idle``: seconds after which a silent worker's job (or durable subscriber's event)
      is claimed by another (live ones renew their claims every third of it), 1 or more. It is
      recorded with a work queue by its first worker, with a durable subscription by its first
      subscriber (5 s if that App sets none; producers record none); a worker or subscriber
      that sets none uses the recorded one, one that sets another gets ``DeclarationConflict``;
      a queue or durable subscription made by an older pigeon, which recorded none, keeps 30 s;
    - ``event_maxlen``, ``request_maxlen``: the approximate length at which group and request
      streams are trimmed (default 10,000);
    - ``max_connections`` of the client's pool for commands (default 128; a command waits for a
      free one); each blocking reader (RPC subject, group, durable subscription, worker) adds
      one to the pool while it runs;
    - ``max_message_size`` in bytes (default 8 MiB): a bigger message is refused at send with
      ``MessageTooLarge``. Redis drops a Pub/Sub subscriber whose output buffer passes 32 MB, or
      stays over 8 MB for a minute (``client-output-buffer-limit pubsub``), losing what was in
      it; at 8 MiB one message alone never gets there;
    - ``wait_replicas``: ``enqueue`` waits (``WAIT``) until that many replicas have the job, up
      to ``wait_timeout`` seconds (default 1, at least 0.001), else raises ``BrokerError``.

    Any other option goes to ``redis.asyncio.Redis`` (``socket_timeout``, ``ssl_ca_certs``, ...).
    ``socket_timeout`` and ``socket_connect_timeout`` are ``SOCKET_TIMEOUT`` (5 s) unless given,
    and never unbounded (``ConfigurationError``): a server that stops answering makes a call
    raise ``BrokerError`` within ``socket_timeout`` seconds.
    """

    def __init__(self, url: str, settings: QueueSettings, options: dict[str, Any]) -> None:
        self.url = mask_url(url)
        servers_of(url, several=False)  # what redis-py would misread, refused first
        try:
            url_options = parse_url(url)
            unknown = set(url_options) - URL_PARAMETERS
            if unknown:
                raise ValueError(f"unknown parameters {sorted(unknown)}")
            database = urlsplit(url).path.strip("/")
            if database and not database.isdigit():
                raise ValueError(f"the database {database!r} is not a number")
        except ValueError as exc:
            raise ConfigurationError(
                f"bad Redis URL {self.url!r} ({exc}); give redis://[user:password@]host[:port]"
                "[/db][?prefix=...] or rediss:// for TLS, with parameters of redis-py's "
                "connections (socket_timeout, ssl_cert_reqs, ...)"
            ) from None
        whose = "redis-py's (redis.asyncio.Redis) are"
        error = unknown_options("Redis", options, DEFAULTS, CLIENT_OPTIONS, whose)
        if error is not None:
            raise error
        self._raw_url, url_prefix = _without_prefix(url)
        given = {k: v for k, v in options.items() if k in DEFAULTS}
        if url_prefix is not None:
            given.setdefault("prefix", url_prefix)
        self._options = {**DEFAULTS, **given}
        self._client_options = {k: v for k, v in options.items() if k in CLIENT_OPTIONS}
        self._client_options.update(_timeouts({**self._client_options, **url_options}))
        _check_options(self._options)
        self._keys = Keys(self._options["prefix"])
        self._settings = settings
        self._redis: Redis | None = None
        self._subscriptions: list[Subscription] = []
        self.slow_consumers = SlowConsumers(self.url)

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._redis is not None and self._channels.healthy

    @property
    def dropped_events(self) -> Mapping[str, int]:
        """Events plain subscribers dropped since the start (slow consumers, and those held as
        they closed), by the subscription's subject as declared."""
        return self.slow_consumers.dropped

    async def connect(self) -> None:
        if self._redis is not None:
            return
        redis = _client(self._raw_url, self._options["max_connections"], self._client_options)
        try:
            await redis.ping()
        except CLIENT_ERRORS as exc:
            await redis.aclose()
            raise translate(exc, self.url, "connecting", bound=_bounds(redis)) from None
        self._make_roles(redis)
        try:
            await self._requests.start()
        except BaseException:
            await self._channels.close()
            await redis.aclose()
            raise
        self._redis = redis

    def _make_roles(self, redis: Redis) -> None:
        """The role objects of a connection through ``redis``, sharing its ``Channels`` and
        ``Calls``."""
        self._channels = Channels(redis, self.url, _socket_timeout(redis))
        self._calls = calls = Calls(self.url)
        scripts = Scripts(redis)
        settings = self._settings
        options, track = self._options, self._subscriptions.append
        declarer = Declarer(
            redis,
            self.url,
            self._keys,
            settings.delivery_limit,
            options["claim_idle"],
            passive=settings.passive,
        )
        self._events = RedisEvents(
            redis,
            self.url,
            self._keys,
            self._channels,
            scripts,
            maxlen=options["event_maxlen"],
            claim_idle=options["claim_idle"],
            max_size=options["max_message_size"],
            track=track,
            drops=self.slow_consumers,
            calls=calls,
        )
        self._requests = RedisRequests(
            redis,
            self.url,
            self._keys,
            self._channels,
            maxlen=options["request_maxlen"],
            max_size=options["max_message_size"],
            track=track,
            calls=calls,
        )
        self._jobs = RedisJobs(
            redis, self.url, self._keys, declarer, scripts, options, track, calls
        )

    async def close(self) -> None:
        """Fail the requests waiting for replies; let the calls under way get their answers
        (up to ``socket_timeout`` seconds, 5 if it is ``None``, while connected), fail the rest
        with ``BrokerError`` (see ``calls``); then close the subscriptions and connections."""
        connected, redis, self._redis = self.connected, self._redis, None
        if redis is None:
            return
        self._requests.close()
        await self._calls.settle(_patience(redis) if connected else 0)
        for subscription in self._subscriptions:
            await subscription.close(0)
        self._subscriptions.clear()
        self.slow_consumers.flush()
        await self._channels.close()
        try:
            await redis.aclose()
        except CLIENT_ERRORS:
            log.debug("pigeon: closing %s failed", self.url, exc_info=True)

    # -- the roles, while connected ----------------------------------------------------------

    @property
    def events(self) -> RedisEvents:
        self._check()
        return self._events

    @property
    def requests(self) -> RedisRequests:
        self._check()
        return self._requests

    @property
    def jobs(self) -> RedisJobs:
        self._check()
        return self._jobs

    def _check(self) -> Redis:
        if self._redis is None:
            raise BrokerError.not_connected(self.url)
        return self._redis


def _socket_timeout(redis: Redis) -> float | None:
    """Seconds the client waits for an answer (redis-py's ``socket_timeout``: 5 by default,
    ``None`` for no limit)."""
    timeout: float | None = redis.connection_pool.connection_kwargs.get("socket_timeout", 5.0)
    return timeout


def _patience(redis: Redis) -> float:
    """Seconds the close waits for the calls under way: as long as one waits for an answer
    (``SOCKET_TIMEOUT`` if the App's own ``connection_pool`` sets none)."""
    timeout = _socket_timeout(redis)
    return SOCKET_TIMEOUT if timeout is None else timeout


def _bounds(redis: Redis) -> str:
    """The two waits a connect may have run out of, as an error names them."""
    kwargs = redis.connection_pool.connection_kwargs
    waits = {name: kwargs.get(name) for name in reversed(TIMEOUTS)}
    return ", ".join(
        f"{name} {wait:g}s" if isinstance(wait, int | float) else f"{name} {wait!r}"
        for name, wait in waits.items()
    )


MAX_TIMEOUT = 3600.0
"""The longest ``socket_timeout`` (``socket_connect_timeout``) taken, in seconds: longer is a
hang for anyone waiting on a server that stopped answering."""


def _timeouts(given: Mapping[str, object]) -> dict[str, float]:
    """``socket_timeout`` and ``socket_connect_timeout`` as ``given`` (by the App's options or,
    taking precedence, its URL), else ``SOCKET_TIMEOUT``. ``ConfigurationError`` for ``None``
    or anything but a number of seconds above 0 and at most ``MAX_TIMEOUT``: every call (the
    close too) waits that long for a server that stopped answering."""
    checked: dict[str, float] = {}
    for name in TIMEOUTS:
        value = given.get(name, SOCKET_TIMEOUT)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value <= MAX_TIMEOUT
        ):
            raise ConfigurationError(
                f"{name}={value!r}: give a number of seconds above 0 and at most "
                f"{MAX_TIMEOUT:g} (default {SOCKET_TIMEOUT:g}); every call, the close too, "
                "waits that long for a Redis that stopped answering"
            )
        checked[name] = float(value)
    return checked


def _client(url: str, max_connections: int, options: dict[str, Any]) -> Redis:
    """A client whose commands wait for a free connection when all ``max_connections`` are busy
    (redis-py's default pool raises at once), unless the App passed a ``connection_pool``."""
    if "connection_pool" in options:
        return Redis(**options)
    connection_options = {k: v for k, v in options.items() if k not in _CLIENT_ONLY}
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=30, **connection_options
    )
    return Redis.from_pool(pool)


def _without_prefix(url: str) -> tuple[str, str | None]:
    """``url`` without its ``prefix`` query parameter (redis-py knows no such thing), and it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [value for name, value in query if name == "prefix"]
    if not prefixes:
        return url, None
    rest = urlencode([(name, value) for name, value in query if name != "prefix"])
    return parts._replace(query=rest).geturl(), prefixes[-1]


def _check_options(options: dict[str, Any]) -> None:
    if not isinstance(options["prefix"], str):
        raise ConfigurationError(f"prefix={options['prefix']!r}: give a string, e.g. 'pigeon:'")
    if options["claim_idle"] is not None:  # not set: a work queue's own
        _check_seconds("claim_idle", options["claim_idle"], MIN_CLAIM_IDLE, CLAIM_IDLE_FLOOR)
    _check_seconds("wait_timeout", options["wait_timeout"], 0.001, "WAIT counts milliseconds")
    whole_number("max_message_size", options["max_message_size"])
    whole_number("max_connections", options["max_connections"], 2)
    for name in ("event_maxlen", "request_maxlen", "wait_replicas"):
        whole_number(name, options[name], 0)


def _check_seconds(name: str, value: object, least: float, why: str) -> None:
    """``ConfigurationError`` unless ``value`` is a finite number of seconds, ``least`` or more
    (``why``: the reason for ``least``)."""
    given = seconds(name, value)
    if not math.isfinite(given) or given < least:
        raise ConfigurationError(
            f"{name}={value!r}: give a number of seconds, {least:g} or more ({why})"
        )


if TYPE_CHECKING:  # mypy proves the transport offers the seam

    def _conforms(transport: RedisTransport) -> Transport:
        return transport
