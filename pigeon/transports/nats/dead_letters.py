"""The dead-letter stream of each work queue: storing, reading, replaying and purging.

A dead letter keeps the original body and headers plus the failure's ``x-pigeon-*`` headers. Its
``Nats-Msg-Id`` is a key made of the work stream and the message's sequence in it, so that a
message dead-lettered twice (its worker died between storing the letter and terminating the
original) is stored once; the message id itself travels in ``x-pigeon-message-id``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from pigeon import headers as h
from pigeon.message import Envelope, Failure
from pigeon.transports.nats import wire
from pigeon.transports.nats.errors import (
    MSG_DELETE_FAILED,
    NO_MESSAGE_FOUND,
    STREAM_NOT_FOUND,
    JetStreamError,
)
from pigeon.transports.nats.jetstream import JetStreamApi
from pigeon.transports.nats.topology import QueueNames

Redeclare = Callable[[], Awaitable[None]]

TYPE_ROOM = 128
"""Bytes of an error's type name a job keeps room for (``room``)."""

TEXT_ROOM = 512
"""Bytes of an error's text a job keeps room for: a dead letter's text is cut to what fits, and
never to less than this."""

CUT = " [cut to fit NATS's limits]"
"""What ends a failure's text cut to fit (see ``DeadLetters.add``)."""

_KEY_DIGITS = 21
"""Room for ``.<sequence>`` after the stream's name in a dead letter's key."""


def room(names: QueueNames) -> int:
    """Bytes of headers a dead letter of ``names``'s queue adds to its job at most: its key and
    the job's own id, and the failure with a type of ``TYPE_ROOM`` bytes and a text of
    ``TEXT_ROOM`` (a longer one is cut to fit). ``enqueue`` keeps this room free."""
    values = {
        wire.MSG_ID: len(names.stream) + _KEY_DIGITS,
        wire.ORIGINAL_ID: 64,
        h.ERROR_TYPE: TYPE_ROOM,
        h.ERROR_MESSAGE: TEXT_ROOM + len(CUT),
        h.ATTEMPTS: 10,
        h.QUEUE: len(names.queue.encode()),
        h.FAILED_AT: 32,
    }
    return sum(len(name) + size + 4 for name, size in values.items())


class DeadLetters:
    """Reads and writes the dead-letter streams of work queues through ``api``."""

    def __init__(self, api: JetStreamApi) -> None:
        self._api = api

    async def add(
        self,
        names: QueueNames,
        envelope: Envelope,
        stream_seq: int,
        failure: Failure,
        redeclare: Redeclare,
    ) -> None:
        """Store ``envelope`` with ``failure``; returns once the stream confirmed it. The
        failure's text is cut to fit the server's limits (``max_payload``, the largest header
        block), ending in ``CUT`` (its type to ``TYPE_ROOM`` bytes if that is not enough).
        Raises ``MessageTooLarge`` if even the job with no text does not fit (a job not enqueued
        through pigeon, or ``max_payload`` lowered since)."""
        key = f"{names.stream}.{stream_seq}"
        headers = _keyed(envelope.with_headers(failure.as_headers()), key)
        over = wire.excess(envelope.body, headers, self._api.max_payload)
        if over > 0 and len(h.encode_text(failure.type).encode()) > TYPE_ROOM:  # its room
            failure = replace(failure, type=_start(failure.type, TYPE_ROOM))
            headers = _keyed(envelope.with_headers(failure.as_headers()), key)
            over = wire.excess(envelope.body, headers, self._api.max_payload)
        text = failure.message[:1000]
        while over > 0 and text:
            budget = len(headers[h.ERROR_MESSAGE].encode()) - over - len(CUT)
            text = _start(text, budget)
            failure = replace(failure, message=text + CUT)
            headers = _keyed(envelope.with_headers(failure.as_headers()), key)
            over = wire.excess(envelope.body, headers, self._api.max_payload)
        await self._api.store(names.dead_subject, envelope.body, headers, redeclare=redeclare)

    async def read(self, names: QueueNames, limit: int | None) -> list[tuple[Envelope, int]]:
        """Up to ``limit`` dead letters, oldest first, each with its sequence in the stream."""
        letters: list[tuple[Envelope, int]] = []
        seq = 1
        while limit is None or len(letters) < limit:
            request = {"seq": seq, "next_by_subj": names.dead_subject}
            try:
                answer = await self._api.call(f"STREAM.MSG.GET.{names.dead_stream}", request)
            except JetStreamError as exc:
                if exc.err_code in (STREAM_NOT_FOUND, NO_MESSAGE_FOUND):
                    break
                raise
            envelope, found = wire.stored(answer["message"])
            letters.append((envelope, found))
            seq = found + 1
        return letters

    async def replay(self, names: QueueNames, limit: int | None, redeclare: Redeclare) -> int:
        """Move up to ``limit`` dead letters back onto the work queue, failure headers removed;
        returns how many this call moved.

        Each is deleted from the dead letters only once the work queue stored it. A letter that
        another replay took meanwhile is skipped: both stored it under one ``Nats-Msg-Id``, so
        the work queue keeps it once, and only the replay whose delete succeeded counts it.
        """
        moved = 0
        for letter, seq in await self.read(names, limit):
            job = letter.without_headers(h.FAILURE_HEADERS)
            headers = _keyed(job, f"{job.message_id}.replay.{names.dead_stream}.{seq}")
            await self._api.store(names.subject, job.body, headers, redeclare=redeclare)
            if await self._delete(names, seq):
                moved += 1
        return moved

    async def _delete(self, names: QueueNames, seq: int) -> bool:
        """Delete dead letter ``seq``; ``False`` if it was gone (another replay took it)."""
        try:
            await self._api.call(f"STREAM.MSG.DELETE.{names.dead_stream}", {"seq": seq})
        except JetStreamError as exc:
            gone = exc.err_code == NO_MESSAGE_FOUND or (
                exc.err_code == MSG_DELETE_FAILED and "no message found" in exc.description
            )
            if not gone:
                raise
            return False
        return True

    async def purge(self, names: QueueNames) -> int:
        """Delete every dead letter; returns how many there were."""
        try:
            answer = await self._api.call(f"STREAM.PURGE.{names.dead_stream}", {})
        except JetStreamError as exc:
            if exc.err_code == STREAM_NOT_FOUND:
                return 0
            raise
        return int(answer.get("purged", 0))


def _start(text: str, budget: int) -> str:
    """The longest start of ``text`` that takes at most ``budget`` bytes as a header value
    (``headers.encode_text``: a space may take 3)."""
    used = 0
    for index, char in enumerate(text):
        used += len(h.encode_text(char).encode())
        if used > budget:
            return text[:index]
    return text


def _keyed(envelope: Envelope, key: str) -> dict[str, str]:
    """``envelope``'s headers with ``key`` as its de-duplication id and its own id kept aside."""
    headers = wire.outgoing(envelope)
    headers[wire.ORIGINAL_ID] = envelope.message_id
    headers[wire.MSG_ID] = key
    return headers
