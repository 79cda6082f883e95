"""One log line per failure: what happened, subject, message id, attempt, error."""

from __future__ import annotations

import logging

from pigeon.message import Envelope

log = logging.getLogger("pigeon")


def log_failure(
    what: str,
    subject: str,
    envelope: Envelope,
    attempt: int,
    error: BaseException,
    level: int = logging.ERROR,
) -> None:
    """Log one line; the traceback too when the ``pigeon`` logger is at DEBUG."""
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "pigeon: %s subject=%s message_id=%s attempt=%d error=%s: %s",
        what,
        subject,
        envelope.message_id,
        attempt,
        type(error).__name__,
        error,
        exc_info=error if log.isEnabledFor(logging.DEBUG) else None,
    )
