"""Any text in a failure log line stays on that line: ``one_line`` escapes what would break it
(any line break Python's ``str.splitlines`` knows) or act on a terminal, and keeps the rest."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pigeon.failures import log_failure, one_line


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_any_text_is_one_line(text: str) -> None:
    line = one_line(text)
    assert len(line.splitlines()) <= 1
    assert "\x1b" not in line


def test_plain_text_stays_as_it_is_and_controls_read_as_python_writes_them() -> None:
    assert one_line("only 3 left: 100% of sku-1") == "only 3 left: 100% of sku-1"
    assert one_line("a\nb\r\x1b[2J\u2028\x85é") == "a\\nb\\r\\x1b[2J\\u2028\\x85é"


def test_a_failure_of_any_length_is_logged_in_at_most_a_thousand_characters_of_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from pigeon.message import new_envelope

    envelope = new_envelope(b"{}", {}, "application/json")
    with caplog.at_level(logging.ERROR, logger="pigeon"):
        log_failure("job failed", "jobs", envelope, 1, ValueError("x" * 200_000))
        log_failure("job failed", "jobs", envelope, 1, ValueError("short"))
    long, short = (record.getMessage() for record in caplog.records)
    assert long.endswith("x" * 1000 + "... (199000 more characters)")
    assert len(long) < 1200
    assert short.endswith("error=ValueError: short")
