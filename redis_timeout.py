import asyncio, math
from fractions import Fraction
from decimal import Decimal
import numpy as np
from common import *
from pigeon import App
setup()
VALS = [None, 0, -1, 0.0, -0.0, float("inf"), float("nan"), True, False, 1e-9, 1e-300, 5e-324, 1e9, 1e300, 2**64, "5", "abc", Decimal("1.5"), Fraction(1, 3), np.float64(2.0), np.float64("nan"), np.int64(0), 1j, [1]]
async def main():
    for v in VALS:
        for key in ("socket_timeout", "socket_connect_timeout"):
            try:
                app = App("redis://127.0.0.1:16379", **{key: v})
            except Exception as e:
                print(f"{key}={v!r}: App() {type(e).__name__}: {str(e)[:90]}"); continue
            try:
                async with asyncio.timeout(10):
                    await app.start(); await app.publish("brk2.x", 1); await app.enqueue("brk2t.q", 1); await app.close()
                print(f"{key}={v!r}: accepted, start/publish/close ok")
            except Exception as e:
                print(f"{key}={v!r}: accepted, then {type(e).__name__}: {str(e)[:120]}")
                try: await app.close()
                except Exception: pass
    for q in ["redis://127.0.0.1:16379?socket_timeout=0", "redis://127.0.0.1:16379?socket_timeout=nan", "redis://127.0.0.1:16379?socket_timeout=-1", "redis://127.0.0.1:16379?socket_timeout=inf", "redis://127.0.0.1:16379?socket_timeout=", "redis://127.0.0.1:16379?socket_connect_timeout=0", "redis://127.0.0.1:16379?socket_timeout=abc"]:
        try:
            app = App(q)
        except Exception as e:
            print(f"{q[22:]}: App() {type(e).__name__}: {str(e)[:90]}"); continue
        try:
            async with asyncio.timeout(10):
                await app.start(); await app.publish("brk2.x", 1); await app.close()
            print(f"{q[22:]}: accepted, ok")
        except Exception as e:
            print(f"{q[22:]}: accepted, then {type(e).__name__}: {str(e)[:120]}")
asyncio.run(main())
