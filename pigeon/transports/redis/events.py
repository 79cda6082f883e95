"""Publish-subscribe on Redis: Pub/Sub for plain subscribers, streams for groups and durable
subscriptions, both fed by one script per publish.

- A plain subscriber subscribes to the channel ``<prefix>ev:<subject>`` (a glob pattern for a
  wildcard subject, each message checked against the subject, since a glob ``*`` spans dots).
- A group reads the stream ``<prefix>group:<group>:<subject>`` through one consumer group with
  ``NOACK``: each event goes to one member. Its live members are a sorted set of expiry times,
  refreshed by each member; when the last leaves (or is found expired), stream and binding go, so
  a group's events are not kept while it has no member (as on NATS and RabbitMQ).
- A durable subscription reads ``<prefix>durable:<name>:<subject>`` with acks
  (``consumer.StreamConsumer``); its stream stays bound while it is stopped. Its ``claim_idle``
  is recorded with it in ``<stream>:settings``, as a work queue's is (``claim_idle``).

Streams are bound to subjects in the key ``<prefix>routes:<subject>`` (a set) or, for wildcard
subjects, ``<prefix>wildcard-routes`` (a hash, stream -> subject). The ``PUBLISH`` script publishes
to the channel and appends to every bound stream in one round trip, atomically: a subscription
that has returned from ``subscribe`` gets every event published after.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.typing import EncodableT

from pigeon.message import Envelope
from pigeon.transports.base import Backlog, Handler, Subscription
from pigeon.transports.limits import check_headers
from pigeon.transports.redis import backlog, wire
from pigeon.transports.redis.calls import SEND, Calls
from pigeon.transports.redis.channels import Channels
from pigeon.transports.redis.claim_idle import (
    CLAIM_IDLE_LUA,
    claim_idle_ms,
    conflict,
    differing_claim_idle,
    milliseconds,
)
from pigeon.transports.redis.consumer import StreamConsumer
from pigeon.transports.redis.errors import translated
from pigeon.transports.redis.scripts import Scripts
from pigeon.transports.redis.shared import SharedReader, parse_event
from pigeon.transports.redis.subscriber import ChannelSubscription
from pigeon.transports.redis.topology import (
    MATCHES_LUA,
    SUBSCRIBERS,
    Keys,
    consumer_name,
    is_wildcard,
    text,
)
from pigeon.transports.slow import SlowConsumers

log = logging.getLogger("pigeon")

MEMBER_TTL = 15.0
"""Seconds a group member counts as live after its last heartbeat (sent every third of it)."""

_BIND = """
local function bind(prefix, stream, subject, wildcard)
  if wildcard == '1' then redis.call('HSET', prefix .. 'wildcard-routes', stream, subject)
  else redis.call('SADD', prefix .. 'routes:' .. esc(subject), stream) end
end
local function unbind(prefix, stream, subject)
  redis.call('HDEL', prefix .. 'wildcard-routes', stream)
  redis.call('SREM', prefix .. 'routes:' .. esc(subject), stream)
  redis.call('DEL', stream, stream .. ':members')
end
local function prune(members)
  redis.call('ZREMRANGEBYSCORE', members, '-inf', now_ms())
  return redis.call('ZCARD', members)
end
"""

_PUBLISH = (
    MATCHES_LUA
    + _BIND
    + """
local prefix, subject, payload = ARGV[1], ARGV[2], ARGV[3]
redis.call('PUBLISH', prefix .. 'ev:' .. esc(subject), payload)
local streams = redis.call('SMEMBERS', prefix .. 'routes:' .. esc(subject))
local wild = redis.call('HGETALL', prefix .. 'wildcard-routes')
for i = 1, #wild, 2 do
  if matches(wild[i + 1], subject) then streams[#streams + 1] = wild[i] end
end
local groups = prefix .. 'group:'
for _, stream in ipairs(streams) do
  if string.sub(stream, 1, #groups) ~= groups then
    redis.call('XADD', stream, '*', 'subject', subject, 'message', payload)
  elseif prune(stream .. ':members') == 0 then
    unbind(prefix, stream, subject)
  else
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], '*', 'subject', subject, 'message', payload)
  end
end
"""
)

_JOIN = (
    MATCHES_LUA
    + _BIND
    + """
local prefix, stream, subject, member, wildcard = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if prune(stream .. ':members') == 0 then redis.call('DEL', stream) end
redis.call('ZADD', stream .. ':members', now_ms() + tonumber(ARGV[6]), member)
local made = redis.pcall('XGROUP', 'CREATE', stream, 'subscribers', '$', 'MKSTREAM')
if type(made) == 'table' and made.err and not string.find(made.err, 'BUSYGROUP') then
  error(made)
end
bind(prefix, stream, subject, wildcard)
"""
)

_DECLARE_DURABLE = (
    MATCHES_LUA
    + _BIND
    + CLAIM_IDLE_LUA
    + """
local prefix, subject, wildcard, mode, given = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local idle = redis.call('HGET', KEYS[2], 'claim_idle_ms')
if mode == 'strict' and other_claim_idle(idle, given) then return idle end
local older = create_group(KEYS[1], 'subscribers')
if not idle then idle = record_claim_idle(KEYS[2], given, older) end
bind(prefix, KEYS[1], subject, wildcard)
return idle
"""
)
"""KEYS: the durable stream and its settings. ARGV: the prefix, the subject, whether it is a
wildcard (1/0), ``strict`` (a subscriber starting) or ``keep`` (one declaring its stream again),
the App's claim idle in ms (empty: not set). Makes the stream and group, binds it and records a
claim idle if none is (a group already there and nothing recorded: an older pigeon made it);
returns the recorded one. A ``strict`` subscriber that disagrees declares nothing."""

_LEAVE = (
    MATCHES_LUA
    + _BIND
    + """
local prefix, stream, subject, member = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('ZREM', stream .. ':members', member)
if prune(stream .. ':members') == 0 then unbind(prefix, stream, subject)
else redis.pcall('XGROUP', 'DELCONSUMER', stream, 'subscribers', member) end
"""
)


class RedisEvents:
    """``Events`` of a connected ``RedisTransport``: publishes events and subscribes handlers, on
    one client and one ``Channels``; ``track`` is told of every subscription started, ``drops``
    counts the events plain subscribers drop (by their subject), ``calls`` holds the publishes
    and reads under way (for the close). Groups and durable
    subscriptions read no more than their free slots: ``max_pending`` (at least
    ``concurrency``) holds there as it is."""

    def __init__(
        self,
        redis: Redis,
        url: str,
        keys: Keys,
        channels: Channels,
        scripts: Scripts,
        *,
        maxlen: int,
        claim_idle: float | None,
        max_size: int,
        track: Callable[[Subscription], None],
        drops: SlowConsumers,
        calls: Calls,
    ) -> None:
        self._redis, self._url, self._keys, self._channels = redis, url, keys, channels
        self._calls = calls
        self._scripts, self._track, self._drops = scripts, track, drops
        self._maxlen, self._max_size = maxlen, max_size
        self._claim_idle_ms = None if claim_idle is None else milliseconds(claim_idle)
        self._publish = redis.register_script(_PUBLISH)
        self._join = redis.register_script(_JOIN)
        self._declare = redis.register_script(_DECLARE_DURABLE)
        self._leave = redis.register_script(_LEAVE)

    async def publish(self, subject: str, envelope: Envelope) -> None:
        """Publish to subscribers and bound streams; returns once Redis has run the script."""
        check_headers(envelope.headers, self._url)
        payload = wire.pack(envelope)
        wire.check_size(len(payload), self._max_size)
        args: list[EncodableT] = [self._keys.prefix, subject, payload, self._maxlen]
        doing = f"publishing on {subject!r}"
        with self._calls(doing, SEND), translated(self._url, doing):
            await self._publish(args=args)

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        group: str | None,
        durable: str | None,
        concurrency: int,
        max_pending: int | None = None,
    ) -> Subscription:
        subscription: Subscription
        if durable is not None:
            subscription = await self._durable(subject, durable, handler, concurrency)
        elif group is not None:
            subscription = await self._group(subject, group, handler, concurrency)
        else:
            channel = ChannelSubscription(
                self._channels,
                self._keys,
                subject,
                handler,
                concurrency,
                max_pending=max_pending,
                drops=self._drops,
            )
            await channel.start()
            subscription = channel
        self._track(subscription)
        return subscription

    async def backlog(self, subject: str, durable: str) -> Backlog:
        with self._calls(f"reading the backlog of durable subscription {durable!r}"):
            return await backlog.read_durable(self._redis, self._url, self._keys, subject, durable)

    async def _group(
        self, subject: str, group: str, handler: Handler, concurrency: int
    ) -> SharedReader:
        stream = self._keys.group_stream(subject, group)
        wildcard = "1" if is_wildcard(subject) else "0"
        ttl = int(MEMBER_TTL * 1000)

        async def join(member: str) -> None:
            args: list[EncodableT] = [self._keys.prefix, stream, subject, member, wildcard, ttl]
            with translated(self._url, f"joining group {group!r} of {subject!r}"):
                await self._join(args=args)

        async def leave(member: str) -> None:
            await self._leave(args=[self._keys.prefix, stream, subject, member])

        reader = SharedReader(
            self._redis,
            self._url,
            stream,
            SUBSCRIBERS,
            handler,
            concurrency,
            join=join,
            leave=leave,
            heartbeat=MEMBER_TTL / 3,
        )
        await reader.start()
        return reader

    async def _declare_durable(self, subject: str, name: str, keep: int | None = None) -> int:
        """Make the durable subscription ``name`` on ``subject`` (stream, group, binding) and
        record its claim idle if none is; return its claim idle in ms: the recorded one, else the
        App's, else ``OLDER_CLAIM_IDLE`` if an older pigeon made it, else ``CLAIM_IDLE``.

        Raises ``DeclarationConflict`` if it records another claim idle than the App sets.
        ``keep``: a subscriber's claim idle (ms), declaring its stream again: recorded if none is,
        never a conflict.
        """
        stream = self._keys.durable_stream(name, subject)
        keys = [stream, self._keys.durable_settings(name, subject)]
        given = self._claim_idle_ms if keep is None else keep
        args: list[EncodableT] = [self._keys.prefix, subject, int(is_wildcard(subject))]
        args += ["strict" if keep is None else "keep", given or ""]
        with translated(self._url, f"declaring durable subscription {name!r} of {subject!r}"):
            idle = text(await self._declare(keys=keys, args=args))
        differing = differing_claim_idle(idle, given)
        if keep is None and differing:
            what = f"durable subscription {name!r} of {subject!r} exists on {self._url}"
            raise conflict(what, differing, "subscription", "subscribers", keys[1])
        return claim_idle_ms(idle, given)

    async def _durable(
        self, subject: str, name: str, handler: Handler, concurrency: int
    ) -> StreamConsumer:
        stream = self._keys.durable_stream(name, subject)
        claim_idle = await self._declare_durable(subject, name)

        async def redeclare() -> None:  # as a member would: a conflict must not stop the pump
            await self._declare_durable(subject, name, keep=claim_idle)

        consumer = StreamConsumer(
            self._redis,
            self._scripts,
            self._url,
            stream=stream,
            group=SUBSCRIBERS,
            consumer=consumer_name(),
            handler=handler,
            concurrency=concurrency,
            claim_idle=claim_idle / 1000,
            parse=parse_event,
            sink=None,
            redeclare=redeclare,
            delayed=f"{stream}:delayed",
            heartbeat=f"{stream}:consumers",
        )
        consumer.start()
        return consumer
