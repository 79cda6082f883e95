import pytest

from pigeon import ConfigurationError, Redeliver, Retry
from pigeon.retry import compute_backoff


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [
        compute_backoff(n, backoff=0.1, max_backoff=0.5, jitter=0.0, rand=0.0) for n in range(1, 6)
    ]
    assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_jitter_stretches_by_at_most_its_fraction() -> None:
    low = compute_backoff(2, backoff=1, max_backoff=10, jitter=0.5, rand=0.0)
    high = compute_backoff(2, backoff=1, max_backoff=10, jitter=0.5, rand=0.999)
    assert low == 2.0
    assert 2.0 < high < 3.0


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"backoff": -1}, {"max_backoff": 0.01}])
def test_bad_retry_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        Retry(**kwargs)  # type: ignore[arg-type]


def test_redeliver_uses_each_delay_once_then_gives_up() -> None:
    policy = Redeliver(delays=(1, 10))
    assert [policy.delay_after(n) for n in (1, 2, 3)] == [1.0, 10.0, None]
    with pytest.raises(ConfigurationError):
        Redeliver(delays=())


async def test_retry_calls_until_success() -> None:
    calls: list[int] = []

    async def flaky(number: int) -> None:
        calls.append(number)
        if number < 3:
            raise ValueError("not yet")

    await Retry(attempts=5, backoff=0.001).call(flaky)
    assert calls == [1, 2, 3]
