"""The service the fuzz scenario throws bad input at: ``pigeon run reliability.services.fuzz:app``.

One handler of each pattern, all taking ``Good``: a subscriber of ``<subject>.events``, an rpc
server of ``<subject>.rpc`` and a worker of ``RELIABILITY_QUEUE``. Good messages are written to
the done file (``event <n>``, ``job <n>``); nothing the fuzzer makes validates as ``Good``.
"""

from __future__ import annotations

from reliability.models import Good
from reliability.services import DoneLog, service_app, setting

app = service_app()
done = DoneLog(setting("DONE", "/dev/null"))
subject = setting("SUBJECT", "reliability.fuzz")


@app.subscribe(f"{subject}.events")
async def on_event(good: Good) -> None:
    done.write(f"event {good.n}")


@app.rpc(f"{subject}.rpc")
async def answer(good: Good) -> int:
    return good.n


@app.worker(setting("QUEUE", "reliability.fuzz"))
async def work(good: Good) -> None:
    done.write(f"job {good.n}")
