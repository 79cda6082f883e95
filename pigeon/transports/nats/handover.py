"""What a closing rpc server holds unstarted goes on to another server of its subject.

A closing ``CoreSubscription`` of requests stops the server's interest first (``UNSUB``), then
publishes each request it holds but has not started again as it came (reply subject, headers and
body), on ``_PIGEON.RPC.<subject>``: where only pigeon's servers listen, so that a request that
came on ``<subject>`` itself reaches none of its subscribers twice (every one had its copy). The
server reads them after the ``UNSUB`` (one connection), so NATS gives each to another server of
the subject, who answers the caller directly.

When no member is left, NATS sends its "no responders" status (503) only to a subscriber of the
reply subject on the publishing connection, never to the caller: so for that round trip the
handover subscribes to each reply subject itself, and passes a 503 it hears on to the caller, who
raises ``NoResponders`` at once (pigeon's request then tries the plain subject, as with any
``NoResponders``).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from nats import errors as nats_errors
from nats.aio.msg import Msg

from pigeon.failures import describe
from pigeon.transports.nats.client import PigeonClient, registered

log = logging.getLogger("pigeon")

RPC_PREFIX = "_PIGEON.RPC."
"""Where pigeon's servers of ``<subject>`` listen for pigeon's requests: no subscriber's."""

_STATUS = "Status"
_NO_RESPONDERS = "503"


class Handover:
    """Hands on ``held``, the requests a closing subscription took out of its queue, and those
    that reach it until the server stops sending (``run``)."""

    def __init__(self, client: PigeonClient, held: list[Msg]) -> None:
        self._client = client
        self._waiting: list[Msg] = []
        for msg in held:
            self.take(msg)

    def ready(self) -> bool:
        return True

    def take(self, msg: Msg) -> None:
        """Keep ``msg`` to hand on (``PigeonClient.take_directly``)."""
        if msg.reply:
            self._waiting.append(msg)
        else:  # as CoreSubscription._crossing drops it
            log.debug("pigeon: dropped a publish on rpc subject %r", msg.subject)

    async def run(self, subscription: Any) -> int:
        """Take ``subscription``'s messages, ask the server to stop sending them, and hand on
        what was held and what comes until the last one sent has come. Returns how many could
        not be handed on (the connection failed: their callers time out)."""
        client, handed = self._client, 0
        client.take_directly(subscription, self)
        try:
            await client.stop_interest(subscription)
            while True:
                batch, self._waiting = self._waiting, []
                try:
                    await self._pass(batch)
                except BaseException:
                    self._waiting += batch
                    raise
                handed += len(batch)
                if not self._waiting:
                    if handed:
                        log.debug("pigeon: handed on %d requests", handed)
                    return 0
        except (nats_errors.Error, OSError, TimeoutError) as exc:
            log.warning(
                "pigeon: could not hand on %d requests: %s", len(self._waiting), describe(exc)
            )
            return len(self._waiting)
        finally:
            client.stop_taking(subscription)

    async def _pass(self, batch: list[Msg]) -> None:
        """Publish ``batch`` again and tell the callers of those nobody took; a round trip
        even when empty, after which nothing sent before our ``UNSUB`` is still on its way."""
        client = self._client
        bounced: set[str] = set()
        watches = []
        try:
            for reply in dict.fromkeys(msg.reply for msg in batch):
                watches.append(await self._watch(reply, bounced))
            for msg in batch:
                await client.publish(_servers_of(msg.subject), msg.data, msg.reply, msg.headers)
            await registered(client)  # NATS's 503s, sent as it read each publish, came first
        finally:
            for watch in watches:
                client.stop_taking(watch)
                with contextlib.suppress(nats_errors.Error):
                    await watch.unsubscribe()
        for reply in bounced:
            await client.send_no_responders(reply)

    async def _watch(self, reply: str, bounced: set[str]) -> Any:
        """Subscribe to ``reply`` for the round trip; a 503 on it is added to ``bounced``."""
        watch = await self._client.subscribe(reply, cb=_ignore)
        self._client.take_directly(watch, _Bounces(bounced))
        return watch


class _Bounces:
    """Notes the reply subjects NATS sent "no responders" to (a ``Taker``)."""

    def __init__(self, bounced: set[str]) -> None:
        self._bounced = bounced

    def ready(self) -> bool:
        return True

    def take(self, msg: Msg) -> None:
        if msg.headers and msg.headers.get(_STATUS) == _NO_RESPONDERS:
            self._bounced.add(msg.subject)


def _servers_of(subject: str) -> str:
    """Where only pigeon's servers of ``subject`` (a request's, prefixed or not) listen."""
    return subject if subject.startswith(RPC_PREFIX) else RPC_PREFIX + subject


async def _ignore(msg: Msg) -> None:
    """A watch's messages all go to its ``_Bounces``; a reply another server sent is the
    caller's (it has its own copy)."""
