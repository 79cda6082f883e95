"""``pigeon run`` stops on SIGINT however it was started: also when it inherited SIGINT ignored
(``pigeon run ... &`` in a non-interactive shell script), with ``--reload`` and ``--workers``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.operating.test_supervisor import SERVICE, LogReader


@pytest.mark.parametrize("mode", [(), ("--reload",), ("--workers", "2")], ids=str)
def test_sigint_stops_pigeon_run_that_inherited_it_ignored(
    tmp_path: Path, mode: tuple[str, ...]
) -> None:
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE))
    command = [sys.executable, "-m", "pigeon", "run", "svc:app", *mode]
    env = {**os.environ, "PIGEON_URL": "memory://"}
    with subprocess.Popen(
        command,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),  # as `cmd &` does
    ) as served:
        log = LogReader(served)
        log.wait_for(r"serving 1 handlers", count=2 if "--workers" in mode else 1)
        served.send_signal(signal.SIGINT)
        try:
            code = served.wait(timeout=30)
        except subprocess.TimeoutExpired:
            served.terminate()  # SIGTERM: each mode stops its children on it
            served.wait(timeout=30)
            raise AssertionError(f"still running 30 s after SIGINT:\n{log.close()}") from None
        output = log.close()
    assert code == 0, output
    assert "stopping, draining handlers" in output
