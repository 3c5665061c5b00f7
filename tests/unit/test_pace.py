"""The pace budget: a request waits for the budget SendGrid's headers announce, instead of
spending a 429; the first PUT goes alone; no wait passes the deadline."""

from __future__ import annotations

import threading

import pytest

from shared.errors import SendGridError
from shared.run.send.pace import UPSERT, PaceBudget

POLL = "GET /v3/marketing/contacts/imports/{id}"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def announced(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": str(reset)}


def test_the_first_put_goes_alone_until_an_answer_tells_the_limit():
    budget = PaceBudget()
    budget.before(UPSERT, None)
    second = threading.Thread(target=budget.before, args=(UPSERT, None))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waits: nothing is known of the limit yet
    budget.after(UPSERT, 202, announced(10, 9, budget._clock() + 60))
    second.join(1.0)
    assert not second.is_alive()
    for _ in range(3):  # other endpoints: a few at once before their first answer
        budget.before(POLL, None)


def test_a_spent_window_is_waited_out_and_never_past_the_deadline():
    clock = Clock()
    budget = PaceBudget(clock=clock)
    budget.before(UPSERT, None)
    budget.after(UPSERT, 202, announced(6, 0, clock.now + 40))  # 6 a minute, all spent
    with pytest.raises(SendGridError, match="deadline"):
        budget.before(UPSERT, clock.now + 30)
    clock.now += 40.1  # the window has ended: the next holds the whole limit
    for _ in range(6):
        budget.before(UPSERT, None)
    assert budget._windows[UPSERT].in_flight == 6


def test_threads_sharing_a_budget_never_spend_more_than_remains():
    budget = PaceBudget()
    budget.before(UPSERT, None)
    budget.after(UPSERT, 202, announced(5, 3, budget._clock() + 3600))
    went: list[int] = []
    refused: list[int] = []

    def request(i: int) -> None:
        try:
            budget.before(UPSERT, None)
        except SendGridError:
            refused.append(i)
        else:
            went.append(i)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(0.3)
    assert len(went) == 3  # the other three wait for the window's end
    budget.refuse(UPSERT, "stopped")  # the run stops sending: the waiting requests give up
    for thread in threads:
        thread.join(1.0)
    assert not any(thread.is_alive() for thread in threads) and len(refused) == 3


def test_a_429_empties_the_window_and_a_reset_in_seconds_is_read_as_a_delay():
    clock = Clock()
    budget = PaceBudget(clock=clock)
    budget.before(POLL, None)
    budget.after(POLL, 429, announced(100, 50, 2))  # another tool spent the budget; Reset in seconds
    with pytest.raises(SendGridError):
        budget.before(POLL, clock.now + 1)
    clock.now += 2.1
    budget.before(POLL, None)
