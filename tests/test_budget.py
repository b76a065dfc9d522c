"""The pull budget's own rules (mirror/budget.py), without a registry: what `take` and
`settle` leave, the live quota lowering what is left, 429, and admission in config order."""

from __future__ import annotations

import threading
import time

import pytest

from mirror.budget import DeferredError, PullBudget, budget_available
from mirror.registry.client import RateLimit


def said(remaining: int) -> RateLimit:
    return RateLimit(limit=100, remaining=remaining, window_seconds=21600, source="1.2.3.4")


@pytest.mark.parametrize(
    ("remaining", "reserve", "available"),
    [(None, 10, None), (100, 10, 90), (10, 10, 0), (3, 10, 0), (0, 0, 0), (200, 0, 200)],
)
def test_budget_available(remaining: int | None, reserve: int, available: int | None) -> None:
    assert budget_available(remaining, reserve) == available


def test_take_is_all_or_nothing_and_unspent_pulls_go_back() -> None:
    budget = PullBudget(5)
    assert budget.take(3) and budget.available == 2
    assert not budget.take(3) and budget.available == 2  # nothing taken
    budget.settle(3, 1)  # one GET made; the other two were not needed
    assert budget.available == 4


def test_a_charged_retry_costs_what_docker_hub_charged() -> None:
    budget = PullBudget(5)
    assert budget.take(1)
    budget.settle(1, 2)  # a body cut short after the 200, then a second GET
    assert budget.available == 3


def test_the_live_quota_lowers_what_is_left_but_never_raises_it() -> None:
    budget = PullBudget(50, reserve=10, ratelimit=said(60))
    assert budget.take(1) and budget.take(4)  # one GET now, four admitted for later
    budget.settle(1, 1, said(20))  # someone else spent 39 meanwhile
    # 20 left, 10 reserved, 4 promised to admitted GETs: 6 for new copies
    assert budget.available == 6 and budget.last_seen == said(20)
    budget.settle(4, 4, said(80))  # the window refilled: the run's own count stands
    assert budget.available == 6


def test_unlimited_takes_anything() -> None:
    budget = PullBudget(None)
    assert budget.take(1000) and budget.available is None


def test_after_a_429_no_pull_is_granted_and_the_gate_is_shut() -> None:
    budget = PullBudget(50, ratelimit=said(60))
    budget.exhausted()
    assert not budget.take(1) and budget.take(0)
    assert budget.last_seen is not None and budget.last_seen.remaining == 0
    with pytest.raises(DeferredError, match="429"), budget.gate():
        pass


def test_the_gate_keeps_the_reserve() -> None:
    budget = PullBudget(50, reserve=10, ratelimit=said(10))
    with pytest.raises(DeferredError, match="10 pulls left, the reserve is 10"), budget.gate():
        pass


def test_turns_follow_config_order_whatever_order_threads_arrive_in() -> None:
    budget = PullBudget(10, order=[0, 2, 5])
    admitted: list[int] = []

    def copy(position: int) -> None:
        with budget.turn(position):
            admitted.append(position)

    threads = [threading.Thread(target=copy, args=(p,)) for p in (5, 2)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    assert admitted == []  # both wait for position 0
    budget.end_turn(0)  # 0 finished without asking for pulls (it failed, say)
    for thread in threads:
        thread.join(timeout=5)
    assert admitted == [2, 5]


def test_turns_do_not_wait_when_the_quota_is_unlimited() -> None:
    budget = PullBudget(None, order=[0, 1])
    with budget.turn(1):  # 0 has not had its turn; no limit, so no order to keep
        pass
