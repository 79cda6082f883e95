"""Bad arguments to every ``pigeon`` command: refused while parsing, exit 2 (a mistake in settings,
which ``pigeon run --workers`` never restarts), naming the option, no traceback, no broker asked;
a port that cannot be bound is an ``error:`` line naming the option to change."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVICE = """
from pigeon import App

app = App()

@app.subscribe("pings")
async def ping(body: dict) -> None: ...
"""

UNREACHABLE = "nats://127.0.0.1:1"
"""A broker nobody serves: a command that asked it would fail with exit 1, not 2."""


def pigeon(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run one ``pigeon`` command to completion (a bad argument must end it at once)."""
    return subprocess.run(
        [sys.executable, "-m", "pigeon", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PIGEON_URL": "memory://"},
    )


@pytest.fixture
def service(tmp_path: Path) -> Path:
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE))
    return tmp_path


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        yield taken.getsockname()[1]


def refused(result: subprocess.CompletedProcess[str], option: str) -> None:
    """``result`` is a usage error about ``option``: exit 2, said in a line, no traceback."""
    said = " ".join(result.stderr.split())
    assert result.returncode == 2, said
    assert option in said, said
    assert "Traceback" not in said, said


@pytest.mark.parametrize(
    ("option", "value"),
    [
        *[
            (option, value)
            for option in ("--http-port", "--health-port", "--metrics-port")
            for value in ("99999", "-1", "0")
        ],
        ("--log-level", "LOUD"),
        ("--log-level", "10"),
        *[("--shutdown-timeout", value) for value in ("nan", "-1", "inf")],
    ],
)
def test_pigeon_run_refuses_a_bad_number_or_level(service: Path, option: str, value: str) -> None:
    refused(pigeon("run", "svc:app", "--bind", "127.0.0.1", option, value, cwd=service), option)


@pytest.mark.parametrize("option", ["--http-port", "--health-port", "--metrics-port"])
def test_a_port_past_65535_for_the_last_worker_is_refused(service: Path, option: str) -> None:
    result = pigeon("run", "svc:app", "--workers", "3", option, "65534", cwd=service)
    refused(result, option)
    assert "--workers 3" in " ".join(result.stderr.split())
    assert "restarting" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("request", "q", "{}", "--timeout", "nan"),
        ("request", "q", "{}", "--timeout", "-1"),
        ("request", "q", "{}", "--timeout", "0"),
        ("request", "q", "{}", "--timeout", "inf"),
        ("enqueue", "q", "{}", "--delay", "nan"),
        ("enqueue", "q", "{}", "--delay", "-1"),
        ("dlq", "show", "q", "--limit", "-1"),
        ("status", "--queue", "q", "--every", "inf"),
        ("status", "--queue", "q", "--window", "inf"),
        ("status", "--queue", "q", "--window", "nan"),
        ("docs", "serve", "svc:app", "--port", "99999"),
        ("docs", "serve", "svc:app", "--port", "0"),
    ],
)
def test_every_command_refuses_a_bad_number_before_asking_a_broker(
    service: Path, args: tuple[str, ...]
) -> None:
    url = () if args[0] == "docs" else ("--url", UNREACHABLE)  # docs serve asks no broker
    result = pigeon(*args, *url, cwd=service)
    refused(result, args[-2])
    assert "=" not in result.stderr.replace("==", ""), "command-line wording, not Python's"
    assert "None" not in result.stderr
    assert not result.stdout


@pytest.mark.parametrize("option", ["--http-port", "--health-port", "--metrics-port"])
def test_a_port_in_use_is_an_error_naming_the_option(
    service: Path, taken_port: int, option: str
) -> None:
    result = pigeon("run", "svc:app", "--bind", "127.0.0.1", option, str(taken_port), cwd=service)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        f"error: cannot serve {_what(option)} on 127.0.0.1:{taken_port}: "
    ), result.stderr
    assert f"choose another {option}" in result.stderr
    assert "Traceback" not in result.stderr


def _what(option: str) -> str:
    return {"--http-port": "HTTP", "--health-port": "health", "--metrics-port": "metrics"}[option]


def test_docs_serve_on_a_port_in_use_claims_nothing_and_exits_2(
    service: Path, taken_port: int
) -> None:
    result = pigeon(
        "docs", "serve", "svc:app", "--host", "127.0.0.1", "--port", str(taken_port), cwd=service
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == "", "nothing said to be served"
    assert result.stderr.startswith(f"error: cannot serve HTTP on 127.0.0.1:{taken_port}: ")
    assert "choose another --port" in result.stderr
    assert "Traceback" not in result.stderr
