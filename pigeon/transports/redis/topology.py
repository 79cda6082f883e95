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

CLAIM_IDLE = 5.0
"""Seconds after which a silent worker's jobs are claimed, for a queue first declared by an App
that does not set ``claim_idle`` (live workers renew their claims every third of it)."""

MIN_CLAIM_IDLE = 1.0
"""The least ``claim_idle``, in seconds: see ``CLAIM_IDLE_FLOOR``."""

CLAIM_IDLE_FLOOR = (
    "live workers renew their claims every third of it, on the event loop: below 1 s, a loop "
    "held up for a few hundred ms by a GC pause, CPU work or a loaded machine lets another "
    "worker take live jobs; idle jobs are looked for only once a second anyway"
)
"""Why ``claim_idle`` is at least ``MIN_CLAIM_IDLE``, as ``ConfigurationError`` says it."""

OLDER_CLAIM_IDLE = 30.0
"""The claim idle of a queue declared by a pigeon that recorded none (its workers, which may
still run, renew their claims every 10 s), and of durable subscriptions."""

UNSET = "unset"
"""The claim idle a producer records for a queue it creates: none yet, its first worker records
one (a queue with a delivery limit and no claim idle at all was declared by an older pigeon)."""

_DECLARE_QUEUE = """
local limit = redis.call('HGET', KEYS[2], 'delivery_limit')
local idle = redis.call('HGET', KEYS[2], 'claim_idle_ms')
local unset = idle == ARGV[7]
if unset then idle = false end
local other_idle = idle and ARGV[4] ~= '' and idle ~= ARGV[4]
if ARGV[3] == 'strict' and ((limit and limit ~= ARGV[2]) or other_idle) then
  return {limit or ARGV[2], idle or (unset and ARGV[7]) or ''}
end
if not idle and ARGV[3] ~= 'use' then
  if ARGV[4] ~= '' then idle = ARGV[4]
  elseif limit and not unset then idle = ARGV[6]
  else idle = ARGV[5] end
  redis.call('HSET', KEYS[2], 'claim_idle_ms', idle)
elseif not idle and not limit then
  idle = ARGV[7]
  redis.call('HSET', KEYS[2], 'claim_idle_ms', idle)
end
if not limit then redis.call('HSET', KEYS[2], 'delivery_limit', ARGV[2]) end
local created = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
if type(created) == 'table' and created.err and not string.find(created.err, 'BUSYGROUP') then
  return redis.error_reply(created.err)
end
return {limit or ARGV[2], idle or (unset and ARGV[7]) or ''}
"""
"""ARGV: the group, the App's delivery limit, ``strict`` (a worker), ``keep`` (a consumer
declaring its queue again) or ``use`` (a producer), the App's claim idle in ms (empty: not
set), ``CLAIM_IDLE`` and ``OLDER_CLAIM_IDLE`` in ms, ``UNSET``. Only a worker (``strict`` or
``keep``) records a claim idle: its own, else ``OLDER_CLAIM_IDLE`` for a queue an older pigeon
declared (a delivery limit, no claim idle), else ``CLAIM_IDLE``; a producer that creates the
queue records ``UNSET``. Returns the queue's delivery limit and claim idle (ms, ``UNSET``, or
empty for an older queue); a ``strict`` worker that disagrees declares nothing."""


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
        self._claim_idle_ms = None if claim_idle is None else _ms(claim_idle)
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
        given = self._claim_idle_ms if claim_idle is None else _ms(claim_idle)
        if self._passive:
            await self._expect(queue)
            limit, idle = str(self._limit), await self._recorded_claim_idle(queue)
        else:
            mode = "strict" if strict else "use" if claim_idle is None else "keep"
            limit, idle = await self._declare(queue, mode, given)
        differing = self._differing(limit, idle, given)
        if strict and differing:
            raise self._conflict(queue, differing)
        seconds = _claim_idle_ms(idle, given) / 1000
        self._declared[key] = seconds
        return seconds

    async def _declare(self, queue: str, mode: str, given: int | None) -> tuple[str, str]:
        """Run the declaring script (``mode``: see ``_DECLARE_QUEUE``); the queue's delivery
        limit and claim idle in ms (``UNSET`` or empty if none is recorded)."""
        keys = [self._keys.queue(queue), self._keys.settings(queue)]
        args: list[EncodableT] = [WORKERS, self._limit, mode, given or ""]
        args += [_ms(CLAIM_IDLE), _ms(OLDER_CLAIM_IDLE), UNSET]
        with translated(self._url, f"declaring work queue {queue!r}"):
            limit, idle = await self._script(keys=keys, args=args)
        return _text(limit), _text(idle)

    async def _recorded_claim_idle(self, queue: str) -> str:
        with translated(self._url, f"checking work queue {queue!r}"):
            idle = await self._redis.hget(self._keys.settings(queue), "claim_idle_ms")
        return "" if idle is None else _text(idle)

    def _differing(self, limit: str, idle: str, given: int | None) -> list[tuple[str, str, str]]:
        """The settings the queue has otherwise than this App: (name, the queue's, the App's)."""
        differing = []
        if limit != str(self._limit):
            differing.append(("delivery_limit", limit, str(self._limit)))
        if idle.isdigit() and given and idle != str(given):
            differing.append(("claim_idle", f"{int(idle) / 1000:g}s", f"{given / 1000:g}s"))
        return differing

    def _conflict(self, queue: str, differing: list[tuple[str, str, str]]) -> DeclarationConflict:
        have = ", ".join(f"{name}={value}" for name, value, _ in differing)
        want = ", ".join(f"{name}={value}" for name, _, value in differing)
        names = " and ".join(name for name, _, _ in differing)
        unset = " (or leave claim_idle unset: the queue's is used)" if "claim_idle" in names else ""
        return DeclarationConflict(
            f"work queue {queue!r} exists on {self._url} with {have}, this App declares {want}; "
            f"give every App of the queue the same {names}{unset}, or, to change the queue's, "
            f"stop its workers and delete the key {self._keys.settings(queue)!r}"
        )

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
        elif not any(_text(group.get("name")) == WORKERS for group in groups):
            missing = f"the consumer group {WORKERS!r} of stream {key!r}"
        else:
            return
        raise ConfigurationError(
            f"{missing} does not exist on {self._url}, and App(passive=True) creates nothing: "
            f"make it ({make}) or drop passive=True"
        )


def _claim_idle_ms(recorded: str, given: int | None) -> int:
    """A queue's claim idle in ms, from the ``recorded`` one (ms, ``UNSET`` or empty for a
    queue an older pigeon declared) and the App's (``None`` if not set)."""
    if recorded.isdigit():
        return int(recorded)
    return given or _ms(CLAIM_IDLE if recorded == UNSET else OLDER_CLAIM_IDLE)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
