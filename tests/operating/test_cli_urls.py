"""A broker URL the client would misread (an unencoded ``#``, ``/`` or ``@`` in its password, a
bad port) stops every command at once: exit 2 (which ``pigeon run --workers`` never restarts),
one line ``error: ...`` saying what to write instead, and no part of the password on stdout or
stderr, even at ``--log-level DEBUG``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SECRET = "S3cretPW"
"""The password's text on each side of the fault: neither part may be shown."""

SERVICE = """
from pigeon import App

app = App()

@app.worker("q")
async def work(body: dict) -> None: ...
"""

URLS = [
    f"amqp://user:{SECRET}#{SECRET}@127.0.0.1:5672/",
    f"amqp://user:p@ss/{SECRET}@127.0.0.1:5672/",  # aio-pika would connect to host 'ss'
    f"amqp://user:{SECRET}@127.0.0.1:5672,127.0.0.1:56x72/",
    f"nats://user:{SECRET}?{SECRET}@127.0.0.1:4222",
    f"redis://:{SECRET}#{SECRET}@127.0.0.1:6379/0",
]

COMMANDS = [
    ["dlq", "ls", "q"],
    ["publish", "subject", "{}"],
    ["status", "--queue", "q"],
    ["run", "svc:app", "--log-level", "DEBUG"],
]


def _pigeon(args: list[str], cwd: Path, url: str, by_env: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIGEON_URL": url} if by_env else dict(os.environ)
    url_args = [] if by_env else ["--url", url]
    command = [sys.executable, "-m", "pigeon", *args, *url_args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def _assert_refused(done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    assert SECRET not in output, output
    assert "ss/" not in output, output
    assert done.returncode == 2, output
    lines = done.stderr.splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: bad "), output
    assert "Traceback" not in output


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_every_command_refuses_a_misread_url_in_one_line(
    url: str, command: list[str], tmp_path: Path
) -> None:
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE))
    _assert_refused(_pigeon(command, tmp_path, url, by_env=False))


@pytest.mark.parametrize("url", URLS[:2])
def test_run_with_workers_stops_at_once_on_a_misread_pigeon_url(url: str, tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE))
    args = ["run", "svc:app", "--workers", "2", "--log-level", "DEBUG"]
    done = _pigeon(args, tmp_path, url, by_env=True)
    _assert_refused(done)
    assert "restarting" not in done.stderr
