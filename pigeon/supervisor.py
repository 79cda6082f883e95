"""``pigeon run --workers N``: N worker processes, each its own App and connection.

The supervisor restarts a worker that dies (with backoff, and says so in the log), and on SIGTERM
or SIGINT passes SIGTERM to every worker, waits for them to drain, and exits 0 if they all did; a
second signal is passed on too (the workers then exit at once). Workers run in process groups of
their own, so a terminal's Ctrl-C reaches them through the supervisor only. A
worker that exits with ``EXIT_CONFIGURATION`` (a mistake in code or settings, which no restart
mends) stops them all, and the supervisor exits with that code instead of restarting it in a loop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable

log = logging.getLogger("pigeon")

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 30.0
EXIT_CONFIGURATION = 2
"""A worker's exit code for a configuration error (the same as a command-line usage error)."""
STABLE_AFTER = 30.0
"""A worker that ran this long before dying is restarted after ``INITIAL_BACKOFF`` again."""


class Supervisor:
    """Keeps ``workers`` processes running; ``command(index)`` is the argv of worker ``index``."""

    def __init__(
        self, command: Callable[[int], list[str]], workers: int, shutdown_timeout: float
    ) -> None:
        self._command = command
        self._workers = workers
        self._shutdown_timeout = shutdown_timeout
        self._stopping = asyncio.Event()
        self._processes: dict[int, asyncio.subprocess.Process] = {}

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; return 0 if every worker then exited cleanly."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._signalled)
        watchers = [asyncio.create_task(self._watch(i)) for i in range(self._workers)]
        log.info("pigeon: supervisor started %d workers", self._workers)
        await self._stopping.wait()
        log.info("pigeon: supervisor stopping %d workers", len(self._processes))
        self._signal_all(signal.SIGTERM)
        _, late = await asyncio.wait(watchers, timeout=self._shutdown_timeout + 10)
        if late:
            log.error("pigeon: %d workers did not stop in time; killing them", len(late))
            self._signal_all(signal.SIGKILL)
        codes = await asyncio.gather(*watchers)
        if EXIT_CONFIGURATION in codes:
            return EXIT_CONFIGURATION
        # -SIGTERM: a worker still starting, stopped before it could take a message
        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1

    def _signalled(self) -> None:
        """The first signal drains the workers (``run``); a second is passed on, and they exit
        at once (their cold shutdown)."""
        if not self._stopping.is_set():
            self._stopping.set()
            return
        log.warning("pigeon: supervisor passing the second signal on: workers exit at once")
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: signal.Signals) -> None:
        for process in self._processes.values():
            if process.returncode is None:
                process.send_signal(sig)

    async def _watch(self, index: int) -> int:
        backoff = INITIAL_BACKOFF
        while True:
            started = time.monotonic()
            # a process group of its own: a terminal's Ctrl-C (sent to the foreground group)
            # reaches the supervisor alone, which passes one SIGTERM on (not two signals)
            process = await asyncio.create_subprocess_exec(*self._command(index), process_group=0)
            self._processes[index] = process
            if self._stopping.is_set():  # the stop came while this one was starting
                process.send_signal(signal.SIGTERM)
            code = await process.wait()
            if self._stopping.is_set():
                return code
            if code == EXIT_CONFIGURATION:
                log.error(
                    "pigeon: worker %d (pid %d) stopped on a configuration error (above); "
                    "not restarting it, stopping the others",
                    index,
                    process.pid,
                )
                self._stopping.set()
                return code
            if time.monotonic() - started > STABLE_AFTER:
                backoff = INITIAL_BACKOFF
            log.warning(
                "pigeon: worker %d (pid %d) exited with code %s; restarting in %.1fs",
                index,
                process.pid,
                code,
                backoff,
            )
            if await self._stopped_within(backoff):
                return 0
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True


def log_format(worker: int | None, supervising: bool) -> str:
    """The format of ``pigeon run``'s log lines: time, level and message. Under ``--workers``
    each line also says which process wrote it, ``[worker i pid N]`` (*i* as in the supervisor's
    lines and the ports' ``P + i``) or ``[supervisor pid N]``, the module's own lines too."""
    if worker is not None:
        prefix = f"[worker {worker} pid %(process)d] "
    elif supervising:
        prefix = "[supervisor pid %(process)d] "
    else:
        prefix = ""
    return f"%(asctime)s %(levelname)s {prefix}%(message)s"
