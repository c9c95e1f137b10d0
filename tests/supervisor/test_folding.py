"""Which triggers may fold into a queued run, and which slots a folded run then covers.

The expected values are written by hand from docs/scheduling.md ("Every slot accounted for")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobd.supervisor.policy import fold_slots, may_fold

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
T1 = datetime(2026, 3, 1, 2, 1, tzinfo=UTC)
T2 = datetime(2026, 3, 1, 2, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "flow", "slot", "catchup_all", "folds"),
    [
        (False, False, False, False, True),  # a watch change or a plain manual run
        (False, False, True, False, True),  # a time slot under catchup = latest/skip
        (False, False, True, True, False),  # catchup = all: each slot its own run
        (False, False, False, True, True),  # catchup = all says nothing of non-slot triggers
        (True, False, False, False, False),  # its own params would be lost
        (False, True, False, False, False),  # a flow's member belongs to its flow
        (True, True, True, True, False),
    ],
)
def test_may_fold(params: bool, flow: bool, slot: bool, catchup_all: bool, folds: bool) -> None:
    assert may_fold(params=params, flow=flow, slot=slot, catchup_all=catchup_all) is folds


def test_a_new_slot_is_added_after_the_ones_already_folded() -> None:
    assert fold_slots((), T0, T1) == (T1,)
    assert fold_slots((T1,), T0, T2) == (T1, T2)


def test_a_slot_is_covered_once() -> None:
    assert fold_slots((T1,), T0, T0) == (T1,)  # the run's own slot
    assert fold_slots((T1,), T0, T1) == (T1,)  # already folded


def test_a_trigger_without_a_slot_adds_none() -> None:
    assert fold_slots((T1,), T0, None) == (T1,)
    assert fold_slots((), None, None) == ()


def test_a_run_without_its_own_slot_still_names_the_folded_ones() -> None:
    # A watch-triggered run queued first, then a time slot folds into it.
    assert fold_slots((), None, T0) == (T0,)
