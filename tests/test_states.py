"""The job-state vocabulary: one enum, its database codes, and the names callers may write."""

from __future__ import annotations

from typing import get_args

import pytest

from sqlxmq_py.states import CODES, JOB_STATES, LABELS, JobState, StateName, state_of, to_state


def test_state_names_are_the_members_values() -> None:
    assert get_args(StateName) == tuple(state.value for state in JobState)
    assert tuple(JobState) == JOB_STATES


def test_a_member_is_its_name_as_a_string() -> None:
    assert JobState.READY == "ready"
    assert f"{JobState.RUNNING}" == "running"
    assert {JobState.FAILED: 1}["failed"] == 1
    assert JobState("cancelled") is JobState.CANCELLED


def test_every_code_belongs_to_exactly_one_state() -> None:
    assert sorted(code for state in JobState for code in state.codes) == sorted(LABELS)
    assert CODES[JobState.WAITING] == ("b", "w", "n")
    assert [state for state in JobState if state.kept] == [JobState.COMPLETED, JobState.CANCELLED]


@pytest.mark.parametrize(
    ("code", "attempts", "state"),
    [
        ("s", 0, JobState.SCHEDULED),
        ("s", 1, JobState.RETRYING),
        ("r", 3, JobState.READY),
        ("l", 0, JobState.RUNNING),
        ("n", 0, JobState.WAITING),
        ("completed", 1, JobState.COMPLETED),
        ("cancelled", 0, JobState.CANCELLED),
    ],
)
def test_state_of_reads_codes(code: str, attempts: int, state: JobState) -> None:
    assert state_of(code, attempts) is state


def test_unknown_codes_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown job state code 'x'"):
        state_of("x", 0)
    assert to_state("done") is None
    assert to_state(3) is None
    assert to_state("ready") is JobState.READY
