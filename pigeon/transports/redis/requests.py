"""Request-reply on Redis: requests through a stream per served subject, replies through Pub/Sub.

- Servers of a subject read ``<prefix>rpc:<subject>`` as members of one consumer group with
  ``NOACK`` (each request to one server), and each subscribes to the channel of the same name:
  its subscriber count is the number of live servers, and a server that dies leaves it with its
  connection. Wildcard subjects are also listed in ``<prefix>rpc-wildcards``.
- A caller runs one script: find a live server's stream (``PUBSUB NUMSUB``) for the subject,
  exactly or through a wildcard, and append the request to it; none means ``NoResponders``, at
  once. Every request of an App names the App's one reply channel ``<prefix>inbox:<id>``, where
  replies are matched to their requests by correlation id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from redis.asyncio import Redis
from redis.typing import EncodableT

from pigeon.errors import BrokerError, NoResponders
from pigeon.failures import describe, one_line
from pigeon.message import Envelope, new_id
from pigeon.transports.base import Handler, Subscription
from pigeon.transports.limits import check_headers
from pigeon.transports.redis import wire
from pigeon.transports.redis.calls import SEND, Calls
from pigeon.transports.redis.channels import Channels
from pigeon.transports.redis.errors import CLIENT_ERRORS, translated
from pigeon.transports.redis.shared import SharedReader
from pigeon.transports.redis.tasks import watched
from pigeon.transports.redis.topology import (
    MATCHES_LUA,
    SERVERS,
    Keys,
    create_group,
    is_wildcard,
)
from pigeon.transports.replies import SERVER_LEFT, ReplyMap, not_served, served

log = logging.getLogger("pigeon")

_REQUEST = (
    MATCHES_LUA
    + """
local prefix, subject = ARGV[1], ARGV[2]
local function live(key) return redis.call('PUBSUB', 'NUMSUB', key)[2] > 0 end
local target = prefix .. 'rpc:' .. esc(subject)
if not live(target) then
  target = nil
  local wild = redis.call('HGETALL', prefix .. 'rpc-wildcards')
  for i = 1, #wild, 2 do
    if matches(wild[i], subject) and live(wild[i + 1]) then target = wild[i + 1] break end
  end
end
if not target then return 0 end
redis.call('XADD', target, 'MAXLEN', '~', ARGV[4], '*', 'subject', subject, 'message', ARGV[3])
redis.call('PEXPIRE', target, ARGV[5])
return 1
"""
)
"""Finds a live server's stream and appends the request; it never removes a registration (a
server that looks dead may be reconnecting: it registers again when its subscription is back)."""

_LEAVE = """
if redis.call('PUBSUB', 'NUMSUB', KEYS[1])[2] > 0 then
  redis.pcall('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  return {}
end
local unread = {}
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if not groups['err'] then
  for _, group in ipairs(groups) do
    local info = {}
    for i = 1, #group, 2 do info[group[i]] = group[i + 1] end
    if info['name'] == ARGV[1] then
      local last = info['last-delivered-id']
      unread = redis.call('XRANGE', KEYS[1], last, '+')
      if #unread > 0 and unread[1][1] == last then table.remove(unread, 1) end
    end
  end
end
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' then redis.call('HDEL', KEYS[2], ARGV[3]) end
return unread
"""
"""A server leaves: the last one of a subject deletes its request stream and its wildcard
registration, and returns the requests no server read (``[id, [field, value, ...]]`` each) for
it to hand on; a server joining meanwhile makes them again."""

STREAM_TTL_MS = 3_600_000
"""A request stream no request was added to for this long expires (its servers, if any are left,
make it again): what a server that died last leaves behind does not stay for good."""


REQUEST = "it may or may not have reached a server: request again"
"""What a request the close cut while it was being sent means."""


def _ignore(channel: bytes, payload: bytes) -> None:
    """Presence channels carry no messages."""


class RequestServer:
    """One server of a subject: its reader, and its presence on the subject's channel."""

    def __init__(
        self, reader: SharedReader, channels: Channels, presence: str, register: Callable[[], None]
    ) -> None:
        self._reader = reader
        self._channels = channels
        self._presence = presence
        self._register = register
        self._closed = False

    async def close(self, timeout: float) -> None:
        if self._closed:
            return
        self._closed = True
        await self._channels.unsubscribe(self._presence, _ignore, resubscribed=self._register)
        await self._reader.close(timeout)


class RedisRequests:
    """``Requests`` of a connected ``RedisTransport``: serves subjects, sends requests and
    replies, on one client and one ``Channels``; ``track`` is told of every server started,
    ``calls`` holds the requests being sent and the replies (for the close)."""

    def __init__(
        self,
        redis: Redis,
        url: str,
        keys: Keys,
        channels: Channels,
        *,
        maxlen: int,
        max_size: int,
        track: Callable[[Subscription], None],
        calls: Calls,
    ) -> None:
        self._redis, self._url, self._keys, self._channels = redis, url, keys, channels
        self._maxlen, self._max_size, self._track, self._calls = maxlen, max_size, track, calls
        self._script = redis.register_script(_REQUEST)
        self._leave = redis.register_script(_LEAVE)
        self._registering: set[asyncio.Task[None]] = set()
        self._replies = ReplyMap()
        self._inbox = keys.inbox(new_id())

    async def start(self) -> None:
        """Subscribe to this App's reply channel."""
        await self._channels.subscribe(self._inbox, self._received)

    def close(self) -> None:
        """Fail the requests still waiting for a reply."""
        self._replies.fail_all(BrokerError(f"{self._url}: connection closed"))
        for task in self._registering:
            task.cancel()

    async def serve(self, subject: str, handler: Handler, *, concurrency: int) -> RequestServer:
        stream = self._keys.request_stream(subject)
        pattern = subject if is_wildcard(subject) else ""

        async def join(member: str) -> None:
            # from the first entry: a stream made again by a request (it had expired, or the
            # last server had left) holds only requests nobody has read yet
            with translated(self._url, f"serving {subject!r}"):
                await create_group(self._redis, stream, SERVERS, "0")

        async def leave(member: str) -> None:
            keys = [stream, self._keys.wildcard_servers]
            unread = await self._leave(keys=keys, args=[SERVERS, member, pattern])
            await self._hand_on([dict(zip(f[::2], f[1::2], strict=True)) for _, f in unread])

        reader = SharedReader(
            self._redis, self._url, stream, SERVERS, handler, concurrency, join=join, leave=leave
        )
        await reader.start()

        def register_again() -> None:
            task = watched(self._register(pattern, stream, again=True), f"registering {pattern!r}")
            self._registering.add(task)
            task.add_done_callback(self._registering.discard)

        try:
            await self._channels.subscribe(stream, _ignore, resubscribed=register_again)
            await self._register(pattern, stream)
        except BaseException:
            await self._channels.unsubscribe(stream, _ignore, resubscribed=register_again)
            await reader.close(0)
            raise
        server = RequestServer(reader, self._channels, stream, register_again)
        self._track(server)
        return server

    async def _register(self, pattern: str, stream: str, *, again: bool = False) -> None:
        """List a wildcard server's subject (``pattern``) where callers look for one."""
        if not pattern:
            return
        if not again:
            with translated(self._url, f"serving {pattern!r}"):
                await self._redis.hset(self._keys.wildcard_servers, pattern, stream)
            return
        try:
            await self._redis.hset(self._keys.wildcard_servers, pattern, stream)
        except CLIENT_ERRORS as exc:
            log.warning(
                "pigeon: could not register %r again on %s: %s", pattern, self._url, describe(exc)
            )

    async def _hand_on(self, unread: list[dict[bytes, bytes]]) -> None:
        """The requests the last server of a stream left ``unread`` (entries' fields): each to
        another server of its subject (through a wildcard), else answered "not served" (its
        caller raises ``NoResponders``); two pipelined round trips in all."""
        if not unread:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for fields in unread:
                    raw, payload = fields.get(b"subject", b""), fields.get(b"message", b"")
                    args: list[EncodableT] = [self._keys.prefix, raw, payload, self._maxlen]
                    await self._script(args=[*args, STREAM_TTL_MS], client=pipe)
                sent = await pipe.execute(raise_on_error=False)
            async with self._redis.pipeline(transaction=False) as pipe:
                for fields, taken in zip(unread, sent, strict=True):
                    request = wire.unpack(fields.get(b"message", b""))
                    if taken != 1 and request.reply_to:
                        name = fields.get(b"subject", b"").decode("utf-8", "replace")
                        reply = wire.pack(not_served(request, name, SERVER_LEFT))
                        pipe.publish(request.reply_to, reply)
                await pipe.execute(raise_on_error=False)
        except Exception as exc:
            log.warning("pigeon: could not hand on %d requests: %r", len(unread), exc)

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        check_headers(envelope.headers, self._url)
        correlation_id = envelope.correlation
        envelope = replace(envelope, correlation_id=correlation_id, reply_to=self._inbox)
        payload = wire.pack(envelope)
        wire.check_size(len(payload), self._max_size)
        args: list[EncodableT] = [self._keys.prefix, subject, payload, self._maxlen]
        args.append(STREAM_TTL_MS)
        doing = f"requesting {subject!r}"
        self._replies.expect(correlation_id)
        try:
            with self._calls(doing, REQUEST), translated(self._url, doing):
                sent = await self._script(args=args)
        except BaseException:
            self._replies.forget(correlation_id)
            raise
        if not sent:
            self._replies.forget(correlation_id)
            raise NoResponders.for_subject(subject, self._url)
        reply = await self._replies.wait(correlation_id, subject, timeout)
        return served(reply, subject, self._url)

    async def reply(self, reply_to: str, envelope: Envelope) -> None:
        """Publish the reply on the caller's channel; nobody listening is no error."""
        check_headers(envelope.headers, self._url)
        payload = wire.pack(envelope)
        wire.check_size(len(payload), self._max_size)
        with self._calls("replying", SEND), translated(self._url, "replying"):
            await self._redis.publish(reply_to, payload)

    def _received(self, channel: bytes, payload: bytes) -> None:
        """A reply on the inbox: to its request; one that matches none is logged and dropped
        (a late one at DEBUG, as on RabbitMQ; one with no correlation id, which can never
        match, at WARNING: a foreign or malformed payload)."""
        reply = wire.unpack(payload)
        if self._replies.resolve(reply):
            return
        if reply.correlation_id:
            log.debug("pigeon: dropped a late reply %s", one_line(reply.correlation_id))
        else:
            log.warning(
                "pigeon: dropped a reply that matches no request on %s (%d bytes, no "
                "correlation id): not a reply pigeon sends",
                self._inbox,
                len(payload),
            )
