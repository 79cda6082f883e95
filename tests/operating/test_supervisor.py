"""``pigeon run --workers N``: a dead worker is restarted and logged; SIGTERM stops all, exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

SERVICE = """
from pigeon import App

app = App()

@app.subscribe("pings")
async def ping(body: dict) -> None: ...
"""


class LogReader:
    """Reads a process's stderr in a thread, so the test can wait for a line with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 20) -> list[re.Match[str]]:
        regex = re.compile(pattern)

        def found() -> list[re.Match[str]]:
            return [m for line in self.lines if (m := regex.search(line))]

        with self._changed:
            self._changed.wait_for(lambda: len(found()) >= count, timeout)
        matches = found()
        assert len(matches) >= count, f"no {count}x {pattern!r} in:\n{''.join(self.lines)}"
        return matches

    def close(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


def test_a_killed_worker_is_restarted_and_sigterm_stops_all(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE))
    command = [sys.executable, "-m", "pigeon", "run", "svc:app", "--workers", "2"]
    env = {**os.environ, "PIGEON_URL": "memory://"}
    with subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env) as sup:
        log = LogReader(sup)
        pids = {int(m[1]) for m in log.wait_for(r"serving 1 handlers \(pid (\d+)\)", count=2)}
        assert len(pids) == 2
        assert sup.pid not in pids
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        log.wait_for(rf"worker \d \(pid {victim}\) exited with code -9; restarting")
        restarted = {int(m[1]) for m in log.wait_for(r"serving 1 handlers \(pid (\d+)\)", count=3)}
        assert len(restarted - pids) == 1
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(timeout=30) == 0
        output = log.close()
    assert output.count("stopping, draining handlers") == 2


def test_each_workers_log_lines_say_which_worker_and_pid(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE + LOGS_AT_IMPORT))
    with serving(tmp_path, "--workers", "2") as (sup, log):
        serving_lines = r"\[worker (\d) pid (\d+)\] pigeon: .* serving 1 handlers \(pid (\d+)\)"
        found = log.wait_for(serving_lines, count=2)
    output = log.close()
    assert {m[1] for m in found} == {"0", "1"}
    assert all(m[2] == m[3] for m in found), "the pid of the worker that logged"
    for index, pid in ((m[1], m[2]) for m in found):  # pigeon's lines, and the module's own
        assert f"INFO [worker {index} pid {pid}] imported" in output
    assert re.search(rf"INFO \[supervisor pid {sup.pid}\] pigeon: supervisor started 2", output)


def test_a_single_process_logs_without_a_prefix(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE + LOGS_AT_IMPORT))
    with serving(tmp_path) as (_, log):
        log.wait_for(r"^\S+ \S+ INFO pigeon: App\('memory://'\) serving 1 handlers")
    assert re.search(r"^\S+ \S+ INFO imported$", log.close(), re.MULTILINE)


@contextlib.contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], LogReader]]:
    """``pigeon run svc:app *args`` on memory://; stopped with SIGTERM (exit 0) on leaving."""
    command = [sys.executable, "-m", "pigeon", "run", "svc:app", *args]
    env = {**os.environ, "PIGEON_URL": "memory://"}
    with subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env) as run:
        log = LogReader(run)
        try:
            yield run, log
        finally:
            run.send_signal(signal.SIGTERM)
            code = run.wait(timeout=30)
        assert code == 0, log.close()


LOGS_AT_IMPORT = """
import logging

logging.getLogger("svc").info("imported")
"""


def test_a_module_that_does_not_import_stops_at_once(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "pigeon", "run", "missing_module:app", "--workers", "2"]
    env = {**os.environ, "PIGEON_URL": "memory://"}
    done = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=30
    )
    assert done.returncode == 2
    assert "cannot import 'missing_module'" in done.stderr
    assert "restarting" not in done.stderr


CONFLICTING = """
from pigeon import App

app = App(delivery_limit=4)

@app.worker("{queue}")
async def work(body: dict) -> None: ...
"""


async def test_workers_that_stop_on_a_configuration_error_are_not_restarted(
    tmp_path: Path, uid: str
) -> None:
    from pigeon import App
    from tests.conftest import BACKEND_FACTORIES

    url = BACKEND_FACTORIES["nats"]().url()
    first = App(url, delivery_limit=3)  # a worker declares the queue with another limit

    @first.worker(f"{uid}.jobs")
    async def work(body: dict[str, int]) -> None: ...

    async with first:
        await first.enqueue(f"{uid}.jobs", {"n": 1})
    (tmp_path / "svc.py").write_text(textwrap.dedent(CONFLICTING.format(queue=f"{uid}.jobs")))
    command = [sys.executable, "-m", "pigeon", "run", "svc:app", "--workers", "2"]
    env = {**os.environ, "PIGEON_URL": url}
    done = await asyncio.to_thread(_run, command, tmp_path, env)
    assert done.returncode == 2, done.stderr
    assert "delivery_limit" in done.stderr
    assert "not restarting it" in done.stderr
    assert "restarting in" not in done.stderr


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=60)


SLOW_TO_STOP = (
    SERVICE
    + """
import asyncio

@app.lifespan
async def slow_to_stop(app):
    yield
    await asyncio.sleep(1)  # a drain that takes a moment, as one with jobs in flight does
"""
)


@contextlib.contextmanager
def at_a_terminal(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], LogReader]]:
    """``pigeon run --workers 2`` of ``SLOW_TO_STOP`` as a terminal's foreground process group
    (``os.killpg`` then does what Ctrl-C does), once both workers serve."""
    (tmp_path / "svc.py").write_text(textwrap.dedent(SLOW_TO_STOP))
    command = [sys.executable, "-m", "pigeon", "run", "svc:app", "--workers", "2"]
    env = {**os.environ, "PIGEON_URL": "memory://"}
    with subprocess.Popen(
        command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env, process_group=0
    ) as sup:
        log = LogReader(sup)
        log.wait_for(r"serving 1 handlers \(pid (\d+)\)", count=2)
        yield sup, log


def test_ctrl_c_at_a_terminal_drains_the_workers(tmp_path: Path) -> None:
    """A terminal's Ctrl-C signals its whole foreground process group: the workers must get one
    SIGTERM from the supervisor, not the terminal's SIGINT too (two signals: a cold shutdown)."""
    with at_a_terminal(tmp_path) as (sup, log):
        os.killpg(sup.pid, signal.SIGINT)
        assert sup.wait(timeout=30) == 0
        output = log.close()
    assert output.count("stopping, draining handlers") == 2
    assert "exiting at once" not in output


def test_a_second_ctrl_c_stops_the_workers_at_once(tmp_path: Path) -> None:
    with at_a_terminal(tmp_path) as (sup, log):
        os.killpg(sup.pid, signal.SIGINT)
        log.wait_for("stopping, draining handlers", count=2)
        os.killpg(sup.pid, signal.SIGINT)  # while the workers drain (SLOW_TO_STOP)
        sup.wait(timeout=30)
        output = log.close()
    assert "passing the second signal on" in output
    assert output.count("exiting at once") == 2
