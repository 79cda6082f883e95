"""``App.run()`` and ``pigeon run``: serve until SIGTERM, drain handlers in flight, exit 0."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pigeon import App
from pigeon.testing.waiting import wait_for


async def test_sigterm_drains_handlers_in_flight() -> None:
    app = App("memory://unit-run", shutdown_timeout=10)
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[int] = []

    @app.worker("jobs")
    async def work(n: int) -> None:
        started.set()
        await release.wait()
        finished.append(n)

    serving = asyncio.create_task(app.run())
    await wait_for(lambda: app.transport is not None and app._running)
    await app.enqueue("jobs", 1)
    await started.wait()
    os.kill(os.getpid(), signal.SIGTERM)
    await wait_for(lambda: not app._running, what="the App to stop taking messages")
    assert not serving.done(), "run() waits for the handler in flight"
    release.set()
    await asyncio.wait_for(serving, 10)
    assert finished == [1]


def test_pigeon_run_serves_until_sigterm_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(
        textwrap.dedent(
            """
            from pigeon import App

            app = App()

            @app.subscribe("pings")
            async def ping(body: dict) -> None: ...
            """
        )
    )
    with subprocess.Popen(
        [sys.executable, "-m", "pigeon", "run", "svc:app", "--shutdown-timeout", "2"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PIGEON_URL": "memory://"},
    ) as process:
        assert process.stderr is not None
        for line in process.stderr:
            if "serving 1 handlers" in line:
                break
        process.send_signal(signal.SIGTERM)
        rest = process.stderr.read()
        assert process.wait(timeout=20) == 0, rest
    assert "stopping" in rest


def test_pigeon_run_explains_a_bad_target(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pigeon", "run", "nowhere"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "module:app" in result.stderr


def test_a_missing_extra_is_one_line_saying_what_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    import typer

    from pigeon import running

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    with pytest.raises(typer.Exit) as exit_:
        running.require("uvicorn", "pigeon docs serve", "http")
    assert exit_.value.exit_code == 2
    assert capsys.readouterr().err == (
        "error: pigeon docs serve needs the http extra: pip install 'pigeon[http]'\n"
    )


def test_a_target_naming_a_missing_attribute_says_so_and_lists_the_apps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from pigeon.cli import load_app

    (tmp_path / "svc_missing.py").write_text("from pigeon import App\n\nmessaging = App()\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(typer.BadParameter) as caught:
        load_app("svc_missing:app")
    assert str(caught.value) == "module 'svc_missing' has no attribute 'app'; its Apps: messaging"


def test_pigeon_run_warns_of_the_memory_transport_and_of_an_unused_pigeon_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from pigeon import running

    monkeypatch.setenv("PIGEON_URL", "nats://user:secret@127.0.0.1:4222")
    with caplog.at_level("WARNING", logger="pigeon"):
        running.warn_about_url(App("memory://"), None)
        warned = caplog.text
        caplog.clear()
        running.warn_about_url(App("nats://127.0.0.1:4222"), None)
        running.warn_about_url(App(), None)
    assert "in-process memory transport" in warned
    assert "PIGEON_URL (nats://user:***@127.0.0.1:4222) is not used" in warned
    assert "secret" not in warned
    assert [r.getMessage() for r in caplog.records] == [
        "pigeon: App('nats://127.0.0.1:4222') was built with a URL in its code; PIGEON_URL "
        "(nats://user:***@127.0.0.1:4222) is not used: build it as App() to choose the URL "
        "from the environment"
    ]
