"""Who may hold a connection to the control socket, and how many bytes it may make the daemon
hold (docs/security.md, "The control socket under abuse").

``Admission`` is pure bookkeeping: the server asks it what to do with each new connection and
each read, and does it. The rules:

- at most ``max_clients`` connections in all, of which ``reserved`` are kept for root and the
  daemon's own user (``privileged``); at most ``per_uid`` for any other uid;
- when a limit is reached, the connection that has gone longest without a complete request
  (and is not busy: no request being answered, no subscription) is closed to make room; when
  every connection is busy, the new one is refused;
- unfinished request bytes: at most ``per_uid_buffered`` for an unprivileged uid (else the
  connection that would exceed it is closed) and ``max_buffered`` in all (else the connection
  whose unfinished request began first is closed, so a short request always gets through).
"""

from __future__ import annotations

import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass, field

log = logging.getLogger("jobd.control")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The control socket's limits (the defaults are documented in docs/security.md)."""

    max_clients: int = 512
    reserved: int = 16
    per_uid: int = 64
    max_buffered: int = 16 << 20
    per_uid_buffered: int = 4 << 20

    def fitted(self, nofile: int) -> Limits:
        """These limits within a soft ``RLIMIT_NOFILE`` of ``nofile``: connections take at
        most half the descriptors (runs, logs, the journal and watches need the rest)."""
        cap = max(8, nofile // 2)
        if self.max_clients <= cap:
            return self
        reserved = min(self.reserved, cap // 4)
        return Limits(
            max_clients=cap,
            reserved=reserved,
            per_uid=min(self.per_uid, cap),
            max_buffered=self.max_buffered,
            per_uid_buffered=self.per_uid_buffered,
        )


@dataclass(slots=True)
class _Conn:
    uid: int
    privileged: bool
    last_request: float  # when it connected, or when its last complete request arrived
    busy: int = 0  # requests being answered and subscriptions
    buffered: int = 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a new connection or read: hold it or not, and whom to close first."""

    admit: bool
    evict: int | None = None  # close this connection first


@dataclass(slots=True)
class Admission:
    """The connections held now, by id (pure; times are plain float seconds). Every decision
    costs O(number of uids), not O(connections): a flood is thousands of them."""

    limits: Limits
    _conns: dict[int, _Conn] = field(default_factory=dict)
    _by_uid: dict[int, int] = field(default_factory=dict)
    # per uid, its idle connections, the longest idle first
    _idle: dict[int, OrderedDict[int, None]] = field(default_factory=dict)
    # connections holding unfinished bytes, in the order they began to: unprivileged, others
    _holders: tuple[OrderedDict[int, None], OrderedDict[int, None]] = field(
        default_factory=lambda: (OrderedDict(), OrderedDict())
    )
    _buffered: int = 0
    _buffered_by_uid: dict[int, int] = field(default_factory=dict)
    _privileged: set[int] = field(default_factory=set)  # uids of root and the daemon's user

    def __len__(self) -> int:
        return len(self._conns)

    @property
    def buffered(self) -> int:
        return self._buffered

    def ask(self, uid: int, *, privileged: bool) -> Verdict:
        """May a new connection of ``uid`` be held, and whom to close for it."""
        lim = self.limits
        if not privileged and self._by_uid.get(uid, 0) >= lim.per_uid:
            return self._room_from([uid])
        cap = lim.max_clients if privileged else lim.max_clients - lim.reserved
        if len(self._conns) < cap:
            return Verdict(True)
        # the uid holding the most connections gives one up; root and the daemon's user
        # give up their own only to each other
        uids = sorted(self._by_uid, key=lambda u: -self._by_uid[u])
        verdict = self._room_from([u for u in uids if u not in self._privileged])
        if verdict.admit or not privileged:
            return verdict
        return self._room_from(uids)

    def _room_from(self, uids: list[int]) -> Verdict:
        for u in uids:
            idle = self._idle.get(u)
            if idle:
                return Verdict(True, next(iter(idle)))
        return Verdict(False)

    def add(self, cid: int, uid: int, *, privileged: bool, now: float) -> None:
        self._conns[cid] = _Conn(uid, privileged, now)
        self._by_uid[uid] = self._by_uid.get(uid, 0) + 1
        if privileged:
            self._privileged.add(uid)
        self._idle.setdefault(uid, OrderedDict())[cid] = None

    def remove(self, cid: int) -> None:
        c = self._conns.pop(cid, None)
        if c is None:
            return
        self.release(cid, c.buffered, conn=c)
        left = self._by_uid[c.uid] - 1
        if left:
            self._by_uid[c.uid] = left
            self._idle[c.uid].pop(cid, None)
        else:
            del self._by_uid[c.uid]
            self._idle.pop(c.uid, None)

    def request(self, cid: int, now: float) -> None:
        """A complete request arrived: the connection is not idle."""
        c = self._conns.get(cid)
        if c is not None:
            c.last_request = now
            idle = self._idle[c.uid]
            if cid in idle:
                idle.move_to_end(cid)

    def busy(self, cid: int, delta: int) -> None:
        c = self._conns.get(cid)
        if c is None:
            return
        c.busy += delta
        idle = self._idle[c.uid]
        if c.busy:
            idle.pop(cid, None)
        elif cid not in idle:
            idle[cid] = None  # it just finished a request: the most recently active

    def reserve(self, cid: int, nbytes: int) -> Verdict:
        """Count ``nbytes`` more of an unfinished request. Over the overall budget, the
        connection whose unfinished request began first (unprivileged ones first) is closed
        for it; over its uid's budget, this connection is refused."""
        c = self._conns.get(cid)
        if c is None:
            return Verdict(False)
        lim = self.limits
        mine = self._buffered_by_uid.get(c.uid, 0)
        if not c.privileged and mine + nbytes > lim.per_uid_buffered:
            return Verdict(False)
        evict: int | None = None
        if self._buffered + nbytes > lim.max_buffered:
            evict = self._oldest_holder(cid, privileged=c.privileged)
            if evict is None:
                return Verdict(False)
            self.remove(evict)
        if not c.buffered:
            self._holders[c.privileged][cid] = None
        c.buffered += nbytes
        self._buffered += nbytes
        self._buffered_by_uid[c.uid] = self._buffered_by_uid.get(c.uid, 0) + nbytes
        return Verdict(True, evict)

    def _oldest_holder(self, cid: int, *, privileged: bool) -> int | None:
        for holders in self._holders[: 2 if privileged else 1]:
            for other in holders:
                if other != cid:
                    return other
        return None

    def release(self, cid: int, nbytes: int, *, conn: _Conn | None = None) -> None:
        """``nbytes`` of the connection's buffer were consumed."""
        c = conn if conn is not None else self._conns.get(cid)
        if c is None or nbytes <= 0:
            return
        nbytes = min(nbytes, c.buffered)
        c.buffered -= nbytes
        if not c.buffered:
            self._holders[c.privileged].pop(cid, None)
        self._buffered -= nbytes
        left = self._buffered_by_uid.get(c.uid, 0) - nbytes
        if left > 0:
            self._buffered_by_uid[c.uid] = left
        else:
            self._buffered_by_uid.pop(c.uid, None)

    def oldest_idle(self) -> int | None:
        """The connection to close when descriptors run out: the longest idle, others'
        before those of root and the daemon's user."""
        best: tuple[bool, float, int] | None = None
        for idle in self._idle.values():
            cid = next(iter(idle), None)
            if cid is not None:
                c = self._conns[cid]
                key = (c.privileged, c.last_request, cid)
                best = key if best is None or key < best else best
        return best[2] if best is not None else None


def raise_nofile() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20  # the kernel's usual nr_open
    if soft == resource.RLIM_INFINITY or soft >= target:
        return target
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open-files limit from %d to %d: %s", soft, target, exc)
        return soft
    return target
