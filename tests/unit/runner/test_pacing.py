"""The lease loop's decisions, driven without a database or an event loop."""

from __future__ import annotations

import pytest

from sqlxmq_py.runner._pacing import (
    DEAF_WAIT_FIRST,
    DEAF_WAIT_MAX,
    FAILURE_WAIT_FIRST,
    FAILURE_WAIT_MAX,
    PROMOTE_GAP,
    Pacer,
    Plan,
    occupied,
    promotion_delay,
    promotion_retry_delay,
)


def pacer(*, poll_interval: float = 2.0) -> Pacer:
    return Pacer(
        min_concurrency=10, max_concurrency=20, poll_interval=poll_interval, max_bytes=1000
    )


def test_a_new_runner_polls_for_every_free_slot_at_once() -> None:
    assert pacer().plan(0.0, 0, 0) == Plan(20, 1000, None)


def test_it_leases_the_free_slots_and_the_rest_of_the_payload_budget() -> None:
    assert pacer().plan(0.0, 7, 300) == Plan(13, 700, None)


@pytest.mark.parametrize(("held", "held_bytes"), [(10, 0), (15, 0), (0, 1000), (3, 5000)])
def test_at_min_concurrency_or_a_full_payload_budget_it_waits_for_a_freed_slot(
    held: int, held_bytes: int
) -> None:
    assert pacer().plan(0.0, held, held_bytes) == Plan(0, 0, None)


def test_after_a_short_poll_it_announces_itself_idle_then_polls_once_more() -> None:
    p = pacer()
    assert p.polled(0.0, 3, 20, None) is True
    # a spawn that looked before the announcement did not notify: one more poll sees it
    assert p.plan(0.0, 3, 0).want == 17
    assert p.polled(0.0, 0, 17, True) is None
    assert p.plan(0.5, 3, 0) == Plan(0, 0, 1.5)


def test_a_full_batch_means_more_may_wait_and_makes_it_busy() -> None:
    p = pacer()
    assert p.polled(0.0, 20, 20, True) is False
    assert p.plan(0.0, 0, 0).want == 20
    assert p.polled(0.0, 20, 20, False) is None  # already announced busy: nothing to say


def test_without_news_it_polls_at_the_poll_interval() -> None:
    p = pacer()
    p.polled(0.0, 0, 20, True)
    assert p.plan(1.999, 0, 0).want == 0
    assert p.plan(2.0, 0, 0).want == 20


def test_a_notification_makes_it_poll_before_the_interval() -> None:
    p = pacer()
    p.polled(0.0, 0, 20, True)
    p.notified()
    assert p.plan(0.1, 0, 0).want == 20


def test_a_notification_during_a_poll_is_not_lost() -> None:
    """A notification that arrives while the lease statement runs may announce a job committed
    after the statement's snapshot: the poll's empty answer must not swallow it."""
    p = pacer()
    p.polled(0.0, 0, 20, True)  # idle, announced
    p.notified()
    assert p.plan(0.1, 0, 0).want == 20  # the lease statement is sent...
    p.notified()  # ...a spawn commits and notifies while it runs...
    assert p.polled(0.2, 0, 20, True) is None  # ...and it finds nothing in its snapshot
    assert p.plan(0.2, 0, 0).want == 20  # polls again at once, not at the interval


def test_a_notification_before_the_poll_is_answered_by_that_poll() -> None:
    p = pacer()
    p.polled(0.0, 0, 20, True)
    p.notified()
    assert p.plan(0.1, 0, 0).want == 20
    p.polled(0.2, 0, 20, True)
    assert p.plan(0.2, 0, 0) == Plan(0, 0, 2.0)


def test_failed_polls_back_off_doubling_to_a_ceiling_and_ignore_notifications() -> None:
    p = pacer()
    waits = [p.failed(0.0) for _ in range(12)]
    assert waits[0] == FAILURE_WAIT_FIRST
    assert waits[1] == 2 * FAILURE_WAIT_FIRST
    assert waits == sorted(waits)
    assert waits[-1] == FAILURE_WAIT_MAX
    p.notified()  # a flood of notifications must not turn the backoff into a busy loop
    assert p.plan(FAILURE_WAIT_MAX - 0.01, 0, 0).want == 0
    assert p.plan(FAILURE_WAIT_MAX, 0, 0).want == 0  # the deadline passed, but still failing
    p.polled(FAILURE_WAIT_MAX, 0, 20, True)  # the retry (made by the loop) succeeded
    assert p.failures == 0


def test_a_failure_after_the_deadline_still_waits_its_backoff() -> None:
    p = pacer()
    wait = p.failed(10.0)
    assert p.plan(10.0 + wait / 4, 0, 0) == Plan(0, 0, 10.0 + wait - (10.0 + wait / 4))


def test_a_deaf_listener_polls_fast_while_there_is_work_and_backs_off_when_there_is_none() -> None:
    p = pacer(poll_interval=10.0)
    p.set_deaf(True)
    assert p.plan(0.0, 0, 0).want == 20
    deadlines: list[float] = []
    for now in range(8):
        assert p.polled(float(now), 0, 20, False) is None  # it never announces itself idle
        deadlines.append(p.deadline - now)
    assert deadlines[0] == 2 * DEAF_WAIT_FIRST
    assert deadlines == sorted(deadlines)
    assert deadlines[-1] == DEAF_WAIT_MAX
    p.polled(8.0, 5, 20, False)  # it found work: poll again soon
    assert p.deadline == 8.0 + DEAF_WAIT_FIRST


def test_a_deaf_runner_announced_idle_announces_itself_busy() -> None:
    p = pacer()
    p.set_deaf(True)
    assert p.polled(0.0, 0, 20, True) is False


def test_deaf_polling_never_waits_longer_than_the_poll_interval() -> None:
    p = pacer(poll_interval=0.2)
    p.set_deaf(True)
    for now in range(10):
        p.polled(float(now), 0, 20, False)
    assert p.deadline - 9.0 == pytest.approx(0.2)


def test_hearing_again_resets_the_deaf_wait_and_polls_at_once() -> None:
    p = pacer()
    p.set_deaf(True)
    for now in range(5):
        p.polled(float(now), 0, 20, False)
    p.set_deaf(False)
    assert p.deaf_wait == DEAF_WAIT_FIRST
    assert p.plan(5.0, 0, 0).want == 20


def test_promotion_runs_again_at_once_after_a_full_batch() -> None:
    assert promotion_delay(True, 100.0, 2.0) == 0.0


def test_promotion_waits_for_the_next_due_job_within_the_interval() -> None:
    assert promotion_delay(False, 0.5, 2.0) == 0.5
    assert promotion_delay(False, 30.0, 2.0) == 2.0
    assert promotion_delay(False, None, 2.0) == 2.0
    assert promotion_delay(False, 0.0, 2.0) == PROMOTE_GAP  # a backlog coming due: batched


def test_failed_promotions_back_off_to_five_seconds() -> None:
    delays = [promotion_retry_delay(n) for n in range(1, 20)]
    assert delays[0] == pytest.approx(0.1)
    assert delays == sorted(delays)
    assert delays[-1] == 5.0


@pytest.mark.parametrize(
    ("running", "held", "taken"),
    [
        (0, 0, 0),
        (5, 5, 5),  # every held job runs
        (0, 20, 0),  # 20 outcomes being written take no slot: the next lease overlaps them
        (3, 20, 3),
        (0, 30, 10),  # past max_concurrency, the outcomes still being written take slots
        (0, 40, 20),  # so the runner holds at most twice max_concurrency leases
        (20, 40, 20),
    ],
)
def test_a_job_whose_outcome_is_being_written_takes_no_slot_up_to_a_bound(
    running: int, held: int, taken: int
) -> None:
    assert occupied(running, held, 20) == taken
    p = pacer()
    if taken < p.min_concurrency:
        assert p.plan(0.0, taken, 0).want == 20 - taken
    else:
        assert p.plan(0.0, taken, 0).want == 0
