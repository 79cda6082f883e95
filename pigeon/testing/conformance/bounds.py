"""Numbers a user gives the work pool are checked at the call, alike on every transport: a
delivery limit under 1, a delay that is infinite, NaN or beyond any broker's clock, a dead-letter
limit that is not a count. None of them may reach a broker, where each used to fail differently
(a job dead-lettered unrun, held for good, redelivered at once, or a raw ``OverflowError``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pigeon import ConfigurationError, Redeliver, Reject
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_dead_letters


@pytest.mark.parametrize("limit", [0, -1, 2.5, True, "3"])
def test_a_delivery_limit_that_is_not_a_count_of_1_or_more_is_refused_at_app(
    make_app: MakeApp, limit: Any
) -> None:
    with pytest.raises(ConfigurationError, match="delivery_limit"):
        make_app(delivery_limit=limit)


@pytest.mark.parametrize(
    "when",
    [
        {"delay": float("inf")},
        {"delay": float("nan")},
        {"delay": 1e300},
        {"delay": 10**400},
        {"delay": -1},
        {"at": datetime(9999, 1, 1, tzinfo=UTC)},
    ],
    ids=["inf", "nan", "1e300", "10**400", "negative", "year 9999"],
)
async def test_a_delay_no_broker_can_hold_is_refused_at_enqueue(
    make_app: MakeApp, uid: str, when: dict[str, Any]
) -> None:
    app = make_app()

    @app.worker(f"{uid}.later")
    async def later(job: Job) -> None:
        pass

    async with app:
        with pytest.raises(ConfigurationError, match="seconds"):
            await app.enqueue(f"{uid}.later", Job(1), **when)
        assert (await app.backlog(f"{uid}.later")).ready in (0, None)


@pytest.mark.parametrize("delay", [float("inf"), float("nan"), 1e19, -0.5])
def test_a_redelivery_delay_no_broker_can_hold_is_refused(delay: float) -> None:
    with pytest.raises(ConfigurationError, match="Redeliver"):
        Redeliver(delays=(1.0, delay))


@pytest.mark.parametrize("limit", [-1, 1.5, "2", True])
async def test_a_dead_letter_limit_that_is_not_a_count_is_refused(
    make_app: MakeApp, uid: str, limit: Any
) -> None:
    app = make_app()
    async with app:
        with pytest.raises(ConfigurationError, match="limit"):
            await app.dead_letters(f"{uid}.jobs", limit)
        with pytest.raises(ConfigurationError, match="limit"):
            await app.replay_dead_letters(f"{uid}.jobs", limit)


async def test_a_dead_letter_limit_of_0_reads_and_moves_none(make_app: MakeApp, uid: str) -> None:
    app = make_app()

    @app.worker(f"{uid}.jobs", dead_letter=True)
    async def refuse(job: Job) -> None:
        raise Reject("not this one")

    async with app:
        for n in range(2):
            await app.enqueue(f"{uid}.jobs", Job(n))
        await wait_dead_letters(app, f"{uid}.jobs", 2)
        assert await app.dead_letters(f"{uid}.jobs", 0) == []
        assert await app.replay_dead_letters(f"{uid}.jobs", 0) == 0
        assert len(await app.dead_letters(f"{uid}.jobs", 1)) == 1
        assert len(await app.dead_letters(f"{uid}.jobs")) == 2


UNPRINTABLE = {
    "lone surrogate": "\ud800",
    "NUL": "\x00",
    "DEL": "\x7f",
    "zero-width space": "\u200b",
    "tab": "\t",
}
UNFIT = r"printable|whitespace"
"""What the refusal says: whitespace gets its own word."""


@pytest.mark.parametrize("case", sorted(UNPRINTABLE))
async def test_a_name_with_a_character_that_is_not_printable_is_refused_at_the_call(
    make_app: MakeApp, uid: str, case: str
) -> None:
    bad = f"{uid}.a{UNPRINTABLE[case]}b"
    app = make_app()
    with pytest.raises(ConfigurationError, match=UNFIT):
        app.worker(bad)
    for option in ("group", "durable"):
        options: dict[str, Any] = {option: f"a{UNPRINTABLE[case]}b"}
        with pytest.raises(ConfigurationError, match=option):
            app.subscribe(f"{uid}.events", **options)
    async with app:
        with pytest.raises(ConfigurationError, match=UNFIT):
            await app.enqueue(bad, Job(1))
        with pytest.raises(ConfigurationError, match=UNFIT):
            await app.publish(bad, Job(1))
        with pytest.raises(ConfigurationError, match=UNFIT):
            await app.request(bad, Job(1), timeout=1)
