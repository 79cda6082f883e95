"""A NATS job keeps room for its dead letter: a job that leaves none is refused at ``enqueue``,
a dead letter's failure text is cut to fit, and a job whose dead letter cannot be stored (not
enqueued through pigeon) stays on its queue, logged as not dead-lettered."""

from __future__ import annotations

import logging
import re

import nats
import pytest

from pigeon import App, MessageTooLarge
from pigeon.testing.waiting import wait_dead_letters, wait_for
from pigeon.transports.nats.dead_letters import CUT, TYPE_ROOM
from pigeon.transports.nats.topology import QueueNames

LONG_TEXT = "日本" * 500
"""An error's text of 1,000 characters, 3,000 bytes in UTF-8: more than a job keeps room for."""


def _usable(error: MessageTooLarge) -> int:
    """The most bytes a job may take, as the error names it."""
    found = re.search(r"a job may take at most (\d+) bytes", str(error))
    assert found is not None, str(error)
    return int(found[1])


async def test_a_job_that_leaves_no_room_for_its_dead_letter_is_refused_at_enqueue(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    async with App(nats_url) as app:
        with pytest.raises(MessageTooLarge, match="dead letter") as caught:
            await app.enqueue(f"{uid}.big", b"x" * (raw.max_payload - 100))
        assert 0 < _usable(caught.value) < raw.max_payload - 500
        assert await app.dead_letters(f"{uid}.big") == []


async def test_a_job_at_the_usable_limit_is_dead_lettered_whole_its_text_cut_to_fit(
    nats_url: str, uid: str, raw: nats.NATS, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(nats_url)

    @app.worker(f"{uid}.big")
    async def fails(body: bytes) -> None:
        raise ValueError(LONG_TEXT)

    async with app:
        with pytest.raises(MessageTooLarge) as caught:
            await app.enqueue(f"{uid}.big", b"x" * raw.max_payload)
        body = b"y" * (_usable(caught.value) - 300)  # 300: room for the job's own headers
        await app.enqueue(f"{uid}.big", body)
        letters = await wait_dead_letters(app, f"{uid}.big", 1)
    assert letters[0].body == body
    failure = letters[0].failure
    assert failure is not None
    assert failure.message.endswith(CUT)
    assert LONG_TEXT.startswith(failure.message.removesuffix(CUT))
    assert len(failure.message) > 100  # the start of the text is kept
    assert "job failed, dead-lettered" in caplog.text


async def test_a_job_too_big_for_its_dead_letter_stays_on_the_queue_logged(
    nats_url: str, uid: str, raw: nats.NATS, caplog: pytest.LogCaptureFixture
) -> None:
    """Published by a plain client near ``max_payload``: its dead letter cannot be stored, so
    it is not acked away, and the log says it was not dead-lettered (never that it was)."""
    app = App(nats_url)

    @app.worker(f"{uid}.big")
    async def fails(body: bytes) -> None:
        raise ValueError("no")

    names = QueueNames.of(f"{uid}.big")
    async with app:
        await raw.jetstream().publish(names.subject, b"z" * (raw.max_payload - 200))
        await wait_for(lambda: "not dead-lettered" in caplog.text, what="the failure logged")
        assert await app.dead_letters(f"{uid}.big") == []
        info = await raw.jetstream().stream_info(names.stream)
        assert info.state.messages == 1  # still on its queue
    assert "job failed, dead-lettered" not in caplog.text
    records = [r for r in caplog.records if "not dead-lettered" in r.getMessage()]
    assert records[0].levelno == logging.ERROR
    assert "MessageTooLarge" in records[0].getMessage()


async def test_a_job_at_the_usable_limit_failing_with_a_long_type_name_is_dead_lettered(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    long_error = type("E" * 3000, (Exception,), {})  # a type name over its room
    app = App(nats_url)

    @app.worker(f"{uid}.big")
    async def fails(body: bytes) -> None:
        raise long_error(LONG_TEXT)

    async with app:
        with pytest.raises(MessageTooLarge) as caught:
            await app.enqueue(f"{uid}.big", b"x" * raw.max_payload)
        body = b"y" * (_usable(caught.value) - 300)
        await app.enqueue(f"{uid}.big", body)
        letters = await wait_dead_letters(app, f"{uid}.big", 1)
    failure = letters[0].failure
    assert failure is not None
    assert failure.type == "E" * TYPE_ROOM  # cut to its room
    assert letters[0].body == body
