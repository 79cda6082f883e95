"""The RPC service: ``pigeon run reliability.services.echo:app``.

Answers requests on ``RELIABILITY_SUBJECT`` with the number they carry, after
``RELIABILITY_DELAY`` seconds, up to ``RELIABILITY_CONCURRENCY`` at once, and writes its pid to the
done file for each answer (so a scenario sees which replica answered how many).
"""

from __future__ import annotations

import asyncio
import os

from reliability.services import DoneLog, service_app, setting

app = service_app()
done = DoneLog(setting("DONE", "/dev/null"))
delay = float(setting("DELAY", "0"))


@app.rpc(setting("SUBJECT", "reliability.echo"), concurrency=int(setting("CONCURRENCY", "64")))
async def echo(n: int) -> int:
    if delay:
        await asyncio.sleep(delay)
    done.write(os.getpid())
    return n
