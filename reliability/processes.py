"""``pigeon run`` processes of a scenario: started, watched through their log, killed, measured.

A ``Service`` is one ``pigeon run module:app`` command, with ``--workers N`` a supervisor and N
worker processes. Its log (stderr) is read as it comes: each worker says
``serving N handlers (pid P)`` once its handlers receive messages, which gives the pids to kill
and to measure. The peak resident set of each worker is read from ``/proc/<pid>/status``
(``VmHWM``) while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

SERVING = re.compile(r"serving \d+ handlers \(pid (\d+)\)")
ROOT = Path(__file__).resolve().parent.parent
"""The repository: ``pigeon run`` imports ``reliability.services`` from there."""


class Service:
    """``pigeon run <app> --workers <workers>`` with ``env`` added to this process's environment."""

    def __init__(self, app: str, env: dict[str, str], *, workers: int = 1) -> None:
        self.app = app
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.workers = workers
        self.lines: list[str] = []
        self.pids: list[int] = []
        """Every worker pid seen serving, in order (restarted workers included)."""
        self.killed: list[int] = []
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sampler: asyncio.Task[None] | None = None
        self._peaks: dict[int, int] = {}

    @property
    def live(self) -> list[int]:
        """Pids of workers that serve and were not killed by the scenario."""
        return [pid for pid in self.pids if pid not in self.killed and _running(pid)]

    @property
    def peak_rss(self) -> int | None:
        """The largest peak resident set (bytes) of any worker so far; ``None`` if none was read."""
        self._sample()
        return max(self._peaks.values(), default=None)

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until every worker serves."""
        args = ["run", self.app, "--workers", str(self.workers), "--log-level", "INFO"]
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pigeon",
            *args,
            cwd=ROOT,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read(self._process))
        self._sampler = asyncio.create_task(self._sample_every(0.2))
        await self.wait_serving(self.workers, timeout)

    async def wait_serving(self, count: int, timeout: float = 30.0) -> None:
        """Until ``count`` workers have said they serve (in all, restarts included)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.pids) < count:
            if self.returncode is not None or loop.time() > deadline:
                raise RuntimeError(f"{self.app} did not start serving:\n{self.log_tail()}")
            await asyncio.sleep(0.02)

    def kill(self, pid: int) -> None:
        """SIGKILL the worker ``pid`` of this service (a supervisor starts another in its place)."""
        process = self._process
        if process is None or pid not in self.pids:
            raise ValueError(f"{pid} is not a worker of {self.app}")
        self._sample()
        self.killed.append(pid)
        if pid == process.pid or _parent(pid) == process.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for it to drain and exit, SIGKILL past ``timeout``; its exit code."""
        process = self._process
        if process is None:
            return 0
        self._sample()
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                code = await process.wait()
        except TimeoutError:
            code = -1
        if self._reader is not None:  # its last log lines
            await asyncio.wait({self._reader}, timeout=2)
        await self.close()
        return code

    async def close(self) -> None:
        """Kill whatever still runs: the workers (the supervisor's children, whether they said
        they serve yet or not), then the supervisor. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            for pid in _children(process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            process.kill()
            await process.wait()
        for task in (self._reader, self._sampler):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.lines[-lines:])

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.lines.append(line)
            match = SERVING.search(line)
            if match:
                self.pids.append(int(match.group(1)))

    async def _sample_every(self, seconds: float) -> None:
        while True:
            self._sample()
            await asyncio.sleep(seconds)

    def _sample(self) -> None:
        for pid in self.pids:
            peak = read_peak_rss(pid)
            if peak is not None:
                self._peaks[pid] = max(peak, self._peaks.get(pid, 0))


def read_peak_rss(pid: int) -> int | None:
    """``VmHWM`` of ``pid`` in bytes: the most memory it has had resident; ``None`` if gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _stat(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, ...); [] if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _running(pid: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and fields[0] not in ("Z", "X")


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    return [int(entry.name) for entry in Path("/proc").iterdir() if _is_child(entry.name, pid)]


def _is_child(name: str, pid: int) -> bool:
    return name.isdigit() and _parent(int(name)) == pid


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


@contextlib.asynccontextmanager
async def running(app: str, env: dict[str, str], *, workers: int = 1) -> AsyncIterator[Service]:
    """``Service(app, env, workers)`` started; killed on the way out whatever happened."""
    service = Service(app, env, workers=workers)
    try:
        await service.start()
        yield service
    finally:
        await service.close()
