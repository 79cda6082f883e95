"""The ranks of RabbitMQ rpc servers' patterns (``transports/rabbitmq/ranks.py``) follow
``subjects.specificity``, the order memory and Redis pick a server in."""

from __future__ import annotations

from pigeon.subjects import specificity
from pigeon.transports.rabbitmq import ranks

PATTERNS = ["a.b", "a.*", "*.b", "a.*.*", "a.>", "*.>", "*.*.>", "*.*.*.*.*.*.*.*.*.*"]


def test_a_more_specific_pattern_has_a_lower_rank() -> None:
    for one in PATTERNS:
        for other in PATTERNS:
            if specificity(one) < specificity(other):
                assert ranks.rank_of(one) < ranks.rank_of(other), (one, other)


def test_every_rank_is_in_the_chain_and_the_last_hands_on_to_none() -> None:
    assert {ranks.rank_of(p) for p in PATTERNS} <= set(range(ranks.RANKS))
    assert ranks.rank_of("a." + ".".join(["*"] * 20)) == ranks.MAX_STARS  # shares the 8's rank
    assert ranks.onward("x", "a.*") == "x.rank.02"
    assert ranks.onward("x", ".".join(["*"] * 9) + ".>") is None
