"""The control socket's admission rules, as plain bookkeeping (no loop, no socket)."""

from __future__ import annotations

from jobd.control.limits import Admission, Limits, Verdict

ROOT, ALICE, BOB = 0, 1000, 1001


def test_per_uid_limit_closes_that_uids_longest_idle_connection() -> None:
    a = Admission(Limits(max_clients=10, reserved=2, per_uid=3))
    for cid, t in ((1, 1.0), (2, 2.0), (3, 3.0)):
        a.add(cid, ALICE, privileged=False, now=t)
    a.request(1, 5.0)  # a complete request: no longer the longest idle
    assert a.ask(ALICE, privileged=False) == Verdict(True, 2)
    assert a.ask(BOB, privileged=False) == Verdict(True)


def test_busy_connections_are_never_closed_for_room() -> None:
    a = Admission(Limits(max_clients=10, reserved=2, per_uid=2))
    a.add(1, ALICE, privileged=False, now=1.0)
    a.add(2, ALICE, privileged=False, now=2.0)
    a.busy(1, 1)
    a.busy(2, 1)
    assert a.ask(ALICE, privileged=False) == Verdict(False)
    a.busy(2, -1)
    assert a.ask(ALICE, privileged=False) == Verdict(True, 2)


def test_reserved_room_for_root_and_the_daemons_user() -> None:
    a = Admission(Limits(max_clients=4, reserved=2, per_uid=4))
    a.add(1, ALICE, privileged=False, now=1.0)
    a.add(2, BOB, privileged=False, now=2.0)
    a.busy(1, 1)
    a.busy(2, 1)
    assert a.ask(ALICE, privileged=False) == Verdict(False)  # only the reserve is left
    assert a.ask(ROOT, privileged=True) == Verdict(True)
    a.add(3, ROOT, privileged=True, now=3.0)
    a.add(4, ROOT, privileged=True, now=4.0)
    # full: root takes the room of its own longest idle connection
    assert a.ask(ROOT, privileged=True) == Verdict(True, 3)


def test_when_full_the_uid_holding_most_gives_way() -> None:
    a = Admission(Limits(max_clients=5, reserved=1, per_uid=10))
    a.add(1, BOB, privileged=False, now=1.0)  # the oldest, but BOB holds one only
    for cid in (2, 3, 4):
        a.add(cid, ALICE, privileged=False, now=float(cid))
    assert a.ask(BOB, privileged=False) == Verdict(True, 2)
    assert a.ask(ROOT, privileged=True) == Verdict(True)


def test_buffered_bytes_per_uid_and_overall() -> None:
    a = Admission(
        Limits(max_clients=10, reserved=1, per_uid=10, max_buffered=100, per_uid_buffered=60)
    )
    a.add(1, ALICE, privileged=False, now=1.0)
    a.add(2, BOB, privileged=False, now=2.0)
    a.add(3, ROOT, privileged=True, now=3.0)
    assert a.reserve(1, 50).admit
    assert not a.reserve(1, 20).admit  # ALICE's own budget
    assert a.reserve(2, 40).admit
    assert a.buffered == 90
    # overall budget: root's request closes the one that began first (ALICE's)
    assert a.reserve(3, 20) == Verdict(True, 1)
    assert a.buffered == 60
    a.release(3, 20)
    a.remove(2)
    assert a.buffered == 0


def test_limits_fit_the_descriptor_limit() -> None:
    fitted = Limits(max_clients=512, reserved=16).fitted(256)
    assert fitted.max_clients == 128
    assert fitted.reserved == 16
    assert Limits(max_clients=100).fitted(1024).max_clients == 100


def test_others_never_close_root_or_the_daemons_user() -> None:
    a = Admission(Limits(max_clients=3, reserved=0, per_uid=3))
    a.add(1, ROOT, privileged=True, now=1.0)
    a.add(2, ROOT, privileged=True, now=2.0)
    a.add(3, ALICE, privileged=False, now=3.0)
    a.busy(3, 1)
    assert a.ask(BOB, privileged=False) == Verdict(False)  # only root's idle ones are left
    a.busy(3, -1)
    assert a.ask(BOB, privileged=False) == Verdict(True, 3)
    assert a.ask(ROOT, privileged=True) == Verdict(True, 3)  # others' before its own
    assert a.oldest_idle() == 3
