# a handler error whose text has a line break: docs/decisions.md "Failure logs are one line"
import asyncio
from pigeon import App, Retry
app = App("memory://")
@app.worker("q", retry=Retry(attempts=1))
async def h(body: dict) -> None:
    raise ValueError("first line\nsubject=forged message_id=123 attempt=1 error=Fake: injected")
@app.subscribe("ev")
async def s(body: dict) -> None:
    raise ValueError("a\nb")
async def main():
    async with app:
        await app.enqueue("q", {"n": 1}); await app.publish("ev", {"n": 1})
        await asyncio.sleep(0.5)
asyncio.run(main())
