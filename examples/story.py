"""How the services tell their story: one line per thing that happened, and how they are served."""

from __future__ import annotations

import asyncio
import logging

from pigeon import App


def say(service: str, text: str) -> None:
    """Print what ``service`` just did, as one line of the story."""
    print(f"  {service:<13} {text}", flush=True)


def serve(app: App) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, with pigeon's log lines (retries, dead letters)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(app.run())
