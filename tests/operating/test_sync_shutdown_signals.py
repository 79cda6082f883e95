"""SIGTERM with a sync handler running: a warm shutdown waits for its thread (and says so), a
second SIGTERM is a cold shutdown that exits at once (as Celery's)."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from asyncio.subprocess import PIPE
from pathlib import Path

SERVICE = """
import asyncio, sys, time
from pigeon import App

app = App("memory://sync-shutdown", shutdown_timeout=0.1)

@app.worker("jobs")
def work(job: int) -> None:  # sync: runs in a thread that nothing can interrupt
    print("started", flush=True)
    time.sleep(60)

async def main() -> None:
    async def feed() -> None:
        while not app.ready:
            await asyncio.sleep(0.01)
        await app.enqueue("jobs", 1)

    feeding = asyncio.create_task(feed())
    await app.run()

asyncio.run(main())
"""


async def _line_with(stream: asyncio.StreamReader, text: str) -> str:
    while True:
        line = (await stream.readline()).decode()
        assert line, f"the process ended before printing {text!r}"
        if text in line:
            return line


async def test_a_second_sigterm_exits_at_once_while_a_sync_handler_runs(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "svc.py", cwd=tmp_path, stdout=PIPE, stderr=PIPE
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        async with asyncio.timeout(20):
            await _line_with(process.stdout, "started")
            process.send_signal(signal.SIGTERM)
            warm = await _line_with(process.stderr, "cannot be interrupted")
            assert process.returncode is None  # still waiting for the thread
            process.send_signal(signal.SIGTERM)
            cold = await _line_with(process.stderr, "exiting at once")
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "a second SIGINT or SIGTERM exits at once" in warm
    assert "SIGTERM" in cold
    assert code == 128 + signal.SIGTERM
