"""A virtual clock for tests: the event loop's time jumps to the next timer whenever every task
waits, so ``Redeliver(delays=(60, 600))`` or ``enqueue(delay=3600)`` take milliseconds.

It is ``looptime`` (the ``testing`` extra: ``pip install 'pigeon[testing]'``), switched on for the
running loop only while the block runs. Only the loop's clock is virtual: ``time.time()`` and
``datetime.now()`` keep the wall clock, and I/O with real brokers takes its real time, so the
virtual clock is for the memory transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from pigeon.errors import ConfigurationError


@contextlib.contextmanager
def virtual_clock() -> Iterator[None]:
    """Run the block with the running loop's clock virtual; a no-op if it already is (a test
    marked ``@pytest.mark.looptime``). Raises ``ConfigurationError`` without ``looptime``.

    The loop's time never goes backwards when the clock turns virtual; after the block it is the
    real clock again, so leave no timers behind (the harness closes its Apps first).
    """
    try:
        import looptime
    except ImportError:
        raise ConfigurationError(
            "the virtual clock needs looptime: pip install 'pigeon[testing]' (or looptime), or "
            "use Harness(..., clock='real')"
        ) from None
    loop: Any = looptime.patch_event_loop(asyncio.get_running_loop(), _enabled=False)  # type: ignore[arg-type]
    if loop.looptime_on:
        yield
        return
    with loop.looptime_enabled():
        virtual_now = loop.time()
    real_now = time.monotonic()
    if real_now > virtual_now:  # timers set so far were set on the real clock: keep them in step
        loop.setup_looptime(start=real_now)
    with loop.looptime_enabled():
        yield


def now() -> float:
    """The running loop's time, in seconds: virtual inside ``virtual_clock``."""
    return asyncio.get_running_loop().time()
