from typing import Any

import pytest

from pigeon import App, ConfigurationError, Router


async def audit(event: dict[str, Any]) -> None:
    pass


@pytest.mark.parametrize("max_pending", [0, -1, 1.5, "10", True])
def test_max_pending_must_be_a_positive_integer(max_pending: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"max_pending=.*give an integer of at least 1"):
        App("memory://unit").subscribe("orders.created", max_pending=max_pending)(audit)


def test_max_pending_counts_the_events_being_handled() -> None:
    with pytest.raises(ConfigurationError, match=r"at least concurrency=4.*or None"):
        Router().subscribe("orders.created", concurrency=4, max_pending=3)(audit)


@pytest.mark.parametrize("max_pending", [None, 4, 1000])
def test_max_pending_of_at_least_concurrency_is_taken(max_pending: int | None) -> None:
    router = Router()
    router.subscribe("orders.created", concurrency=4, max_pending=max_pending)(audit)
    assert router.routes[0].options["max_pending"] == max_pending
