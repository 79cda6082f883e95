"""Where everything lives in Redis: key and channel names, and the declarations of work queues.

Every key and channel starts with the App's ``prefix`` (default ``pigeon:``); see
``docs/transports/redis.md`` for the whole layout. Names are pure functions of the prefix and the
subject or queue, so producers and consumers in different processes find each other, and
injective ones: each user-given part is ``escape``d (``%`` and ``:``), so ``:`` only ever
separates parts and no queue, group, subject or durable name can reach another's keys.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from redis.typing import EncodableT

from pigeon.errors import ConfigurationError, DeclarationConflict
from pigeon.subjects import is_wildcard as is_wildcard
from pigeon.transports.redis.claim_idle import (
    CLAIM_IDLE_LUA,
    UNSET,
    Differing,
    claim_idle_ms,
    conflict,
    differing_claim_idle,
    milliseconds,
)
from pigeon.transports.redis.errors import translated

WORKERS = "workers"
"""The consumer group of every work queue."""

SUBSCRIBERS = "subscribers"
"""The consumer group of every event stream (a group's or a durable subscription's)."""

SERVERS = "servers"
"""The consumer group of every request stream."""

RETURNED = "pigeon-returned"
"""The consumer that holds the entries a closing consumer gave back, until one is claimed."""

MATCHES_LUA = """
local function tokens(s)
  local t = {}
  for token in string.gmatch(s, '[^.]+') do t[#t + 1] = token end
  return t
end
local function matches(pattern, subject)
  if pattern == subject then return true end
  local p, s = tokens(pattern), tokens(subject)
  for i, token in ipairs(p) do
    if token == '>' then return #s >= i end
    if i > #s then return false end
    if token ~= '*' and token ~= s[i] then return false end
  end
  return #p == #s
end
local function esc(s)
  return (string.gsub(string.gsub(s, '%%', '%%25'), ':', '%%3A'))
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""
"""Lua helpers the scripts share: NATS subject matching (as ``pigeon.subjects.matches``), a name
part escaped (as ``escape``), and the server's clock in milliseconds."""

_DECLARE_QUEUE = (
    CLAIM_IDLE_LUA
    + """
local limit = redis.call('HGET', KEYS[2], 'delivery_limit')
local idle = redis.call('HGET', KEYS[2], 'claim_idle_ms')
local unset = idle == ARGV[5]
if unset then idle = false end
if ARGV[3] == 'strict' and ((limit and limit ~= ARGV[2]) or other_claim_idle(idle, ARGV[4])) then
  return {limit or ARGV[2], idle or (unset and ARGV[5]) or ''}
end
if not idle and ARGV[3] ~= 'use' then
  idle = record_claim_idle(KEYS[2], ARGV[4], limit and not unset)
elseif not idle and not limit then
  idle = ARGV[5]
  redis.call('HSET', KEYS[2], 'claim_idle_ms', idle)
end
if not limit then redis.call('HSET', KEYS[2], 'delivery_limit', ARGV[2]) end
create_group(KEYS[1], ARGV[1])
return {limit or ARGV[2], idle or (unset and ARGV[5]) or ''}
"""
)
"""ARGV: the group, the App's delivery limit, ``strict`` (a worker), ``keep`` (a consumer
declaring its queue again) or ``use`` (a producer), the App's claim idle in ms (empty: not
set), ``UNSET``. Only a worker (``strict`` or ``keep``) records a claim idle: its own, else
``OLDER_CLAIM_IDLE`` for a queue an older pigeon declared (a delivery limit, no claim idle),
else ``CLAIM_IDLE``; a producer that creates the queue records ``UNSET``. Returns the queue's
delivery limit and claim idle (ms, ``UNSET``, or empty for an older queue); a ``strict``
worker that disagrees declares nothing."""


def escape(part: str) -> str:
    """A user-given name ``part`` (queue, subject, group, durable name) as it goes into a key:
    ``%`` and ``:`` percent-encoded, anything else as it is (``orders.created`` stays)."""
    return part.replace("%", "%25").replace(":", "%3A")


def unescape(part: str) -> str:
    """The name whose ``escape`` is ``part``."""
    return part.replace("%3A", ":").replace("%25", "%")


def escape_glob(text: str) -> str:
    """``text`` with the characters a Redis glob gives a meaning to escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def glob_of(subject: str) -> str:
    """A Redis glob that matches at least every subject ``subject`` (with wildcards) matches.

    ``*`` in a glob spans dots, so receivers still check each subject with ``subjects.matches``.
    """
    tokens = ["*" if t in ("*", ">") else escape_glob(t) for t in subject.split(".")]
    return ".".join(tokens)


async def create_group(redis: Redis, stream: str, group: str, start: str) -> None:
    """Make consumer group ``group`` of ``stream`` (and the stream), reading from ``start``
    (``$``: what is added from now on, ``0``: everything); an existing group is left as it is."""
    try:
        await redis.xgroup_create(stream, group, id=start, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def consumer_name() -> str:
    """A consumer name unique to one subscription: host, process and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(4).hex()}"


@dataclass(frozen=True, slots=True)
class Keys:
    """Key and channel names under one ``prefix``: ``<prefix><kind>:<escaped name>[:<suffix>]``."""

    prefix: str

    def event_channel(self, subject: str) -> str:
        """The Pub/Sub channel of events on ``subject``."""
        return f"{self.prefix}ev:{escape(subject)}"

    def event_glob(self, subject: str) -> str:
        """The Pub/Sub pattern of events on a wildcard ``subject`` (a superset: check each)."""
        return escape_glob(f"{self.prefix}ev:") + glob_of(escape(subject))

    def subject_of(self, channel: bytes) -> str:
        """The subject of an event channel (``event_channel``'s inverse)."""
        return unescape(channel.decode("utf-8", "replace")[len(self.event_channel("")) :])

    def exact_routes(self, subject: str) -> str:
        """The set of event streams bound to exactly ``subject``."""
        return f"{self.prefix}routes:{escape(subject)}"

    @property
    def wildcard_routes(self) -> str:
        """The hash of event streams bound to a wildcard subject: stream -> pattern."""
        return f"{self.prefix}wildcard-routes"

    def group_stream(self, subject: str, group: str) -> str:
        """The stream of a subscription group; its live members are in ``<stream>:members``."""
        return f"{self.prefix}group:{escape(group)}:{escape(subject)}"

    def durable_stream(self, name: str, subject: str) -> str:
        """The stream of the durable subscription ``name`` on ``subject`` (a durable
        subscription is its name and subject, as a JetStream consumer is)."""
        return f"{self.prefix}durable:{escape(name)}:{escape(subject)}"

    def durable_settings(self, name: str, subject: str) -> str:
        """The hash of the settings the durable subscription ``name`` on ``subject`` records."""
        return f"{self.durable_stream(name, subject)}:settings"

    def request_stream(self, subject: str) -> str:
        """The stream of requests to ``subject``, and the channel its servers subscribe to (their
        number is how a caller knows whether anyone serves it)."""
        return f"{self.prefix}rpc:{escape(subject)}"

    @property
    def wildcard_servers(self) -> str:
        """The hash of wildcard subjects that have (or had) a server: subject -> request stream."""
        return f"{self.prefix}rpc-wildcards"

    def inbox(self, name: str) -> str:
        """The reply channel of one App."""
        return f"{self.prefix}inbox:{escape(name)}"

    def queue(self, queue: str) -> str:
        """The stream of the work queue ``queue``."""
        return f"{self.prefix}q:{escape(queue)}"

    def delayed(self, queue: str) -> str:
        """The sorted set of jobs of ``queue`` waiting for a delayed redelivery (score: due ms)."""
        return f"{self.queue(queue)}:delayed"

    def settings(self, queue: str) -> str:
        """The hash of the broker-side settings ``queue`` was declared with."""
        return f"{self.queue(queue)}:settings"

    def dead_letters(self, queue: str) -> str:
        """The dead-letter stream of ``queue``."""
        return f"{self.queue(queue)}:dlq"

    def consumers(self, queue: str) -> str:
        """The sorted set of the live consumers of ``queue`` (score: the server's time, in ms,
        until which each counts as live without another heartbeat)."""
        return f"{self.queue(queue)}:consumers"


class Declarer:
    """Declares work queues once per transport: the stream, its consumer group and settings.

    ``claim_idle``: the App's, in seconds, or ``None`` if it sets none (it then uses the
    queue's: see ``queue``)."""

    def __init__(
        self,
        redis: Redis,
        url: str,
        keys: Keys,
        delivery_limit: int,
        claim_idle: float | None = None,
        *,
        passive: bool = False,
    ) -> None:
        self._redis = redis
        self._passive = passive
        self._keys = keys
        self._url = url
        self._limit = delivery_limit
        self._claim_idle_ms = None if claim_idle is None else milliseconds(claim_idle)
        self._script = redis.register_script(_DECLARE_QUEUE)
        self._declared: dict[str, float] = {}

    async def queue(
        self,
        queue: str,
        *,
        again: bool = False,
        strict: bool = True,
        claim_idle: float | None = None,
    ) -> float:
        """Make ``queue``'s stream and consumer group (reading from its first entry) and record
        its settings; return its claim idle in seconds: the recorded one, else the App's, else
        ``OLDER_CLAIM_IDLE`` for a queue an older pigeon declared, ``CLAIM_IDLE`` for another.

        Only a worker (``strict``) records a claim idle; a producer uses the queue as it is, and
        records ``UNSET`` if it creates it. Raises ``DeclarationConflict`` if the queue exists
        with another delivery limit or claim idle and ``strict``. ``claim_idle`` stands for the
        App's: a consumer declaring its queue again records it if none is, and never conflicts.
        """
        key = f"{queue}\0strict" if strict else queue
        known = self._declared.get(f"{queue}\0strict", self._declared.get(key))
        if known is not None and not again:
            return known
        given = self._claim_idle_ms if claim_idle is None else milliseconds(claim_idle)
        if self._passive:
            await self._expect(queue)
            limit, idle = str(self._limit), await self._recorded_claim_idle(queue)
        else:
            mode = "strict" if strict else "use" if claim_idle is None else "keep"
            limit, idle = await self._declare(queue, mode, given)
        differing = self._differing(limit, idle, given)
        if strict and differing:
            raise self._conflict(queue, differing)
        seconds = claim_idle_ms(idle, given) / 1000
        self._declared[key] = seconds
        return seconds

    async def _declare(self, queue: str, mode: str, given: int | None) -> tuple[str, str]:
        """Run the declaring script (``mode``: see ``_DECLARE_QUEUE``); the queue's delivery
        limit and claim idle in ms (``UNSET`` or empty if none is recorded)."""
        keys = [self._keys.queue(queue), self._keys.settings(queue)]
        args: list[EncodableT] = [WORKERS, self._limit, mode, given or ""]
        args.append(UNSET)
        with translated(self._url, f"declaring work queue {queue!r}"):
            limit, idle = await self._script(keys=keys, args=args)
        return text(limit), text(idle)

    async def _recorded_claim_idle(self, queue: str) -> str:
        with translated(self._url, f"checking work queue {queue!r}"):
            idle = await self._redis.hget(self._keys.settings(queue), "claim_idle_ms")
        return "" if idle is None else text(idle)

    def _differing(self, limit: str, idle: str, given: int | None) -> Differing:
        """The settings the queue has otherwise than this App: (name, the queue's, the App's)."""
        differing = []
        if limit != str(self._limit):
            differing.append(("delivery_limit", limit, str(self._limit)))
        return differing + differing_claim_idle(idle, given)

    def _conflict(self, queue: str, differing: Differing) -> DeclarationConflict:
        what = f"work queue {queue!r} exists on {self._url}"
        return conflict(what, differing, "queue", "workers", self._keys.settings(queue))

    async def _expect(self, queue: str) -> None:
        """App(passive=True): check that ``queue``'s stream and its ``workers`` group exist,
        creating nothing; ``ConfigurationError`` naming what is missing and the command that
        makes it."""
        key = self._keys.queue(queue)
        make = f"XGROUP CREATE {key} {WORKERS} 0 MKSTREAM"
        with translated(self._url, f"checking work queue {queue!r}"):
            try:
                groups = await self._redis.xinfo_groups(key)
            except ResponseError as exc:
                if "no such key" not in str(exc).lower():
                    raise
                groups = None
        if groups is None:
            missing = f"the stream {key!r} of work queue {queue!r}"
        elif not any(text(group.get("name")) == WORKERS for group in groups):
            missing = f"the consumer group {WORKERS!r} of stream {key!r}"
        else:
            return
        raise ConfigurationError(
            f"{missing} does not exist on {self._url}, and App(passive=True) creates nothing: "
            f"make it ({make}) or drop passive=True"
        )


def text(value: object) -> str:
    """A reply's ``value`` as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
