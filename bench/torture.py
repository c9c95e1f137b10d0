"""Torture: a real daemon killed with SIGKILL at random moments, over and over, then checked.

    python bench/torture.py --kills N --seed S [--json]

Jobs, all with the default ``overlap`` (queue):

- ``tick`` every 1s, ``slow`` every 3s (runs 2s and leaves a ``setsid`` escapee behind),
  ``sparse`` every 7s: ``catchup = "all"``;
- ``latest`` every 2s (runs 1.5s): ``catchup = "latest"``;
- ``head`` every 5s, then ``mid`` (needs head), then ``tail`` (needs mid): a needs chain;
- ``inbox``: watches a directory that a writer fills with a new file every 0.3s, whether the
  daemon is up or not.

Each life lasts a random 0.05-1.5 s after READY before the SIGKILL; a last life finishes the
window and is stopped with SIGTERM. Prints, each of which must be 0:

- missing slots: slots of the ``catchup = "all"`` jobs without a finished run of their own;
- unaccounted slots: slots of ``latest`` neither run nor folded (``folded_slots``), except
  those missed while down and superseded by a newer missed slot (docs/scheduling.md);
- finished runs repeated: a run started again after the journal had it finished, or one
  (run, attempt) started twice;
- orphans: a job process alive at the end, or at a restart one from an older attempt;
- lost watch changes: files written that no finished ``inbox`` run was given;
- lost flow steps: a flow whose ``head`` succeeded without a finished ``mid`` and ``tail``.

and, for information, folded slots (slots of ``latest`` covered by another run).
Slots are computed here from the offset rule (``k*P + H mod P``), not by jobd.
Exit code 0 when every figure that must be 0 is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ALL_JOBS = {"tick": 1, "slow": 3, "sparse": 7}
LATEST = {"latest": 2}
START = "echo start $JOBD_RUN_ID $JOBD_ATTEMPT >> {ledger}"
JOBS = """\
[jobs.tick]
every = "1s"
catchup = "all"
command = "{start}"

[jobs.slow]
every = "3s"
catchup = "all"
kill_grace = "300ms"
command = "{start}; (setsid sleep 30 &); sleep 2"

[jobs.sparse]
every = "7s"
catchup = "all"
command = "{start}"

[jobs.latest]
every = "2s"
catchup = "latest"
command = "{start}; sleep 1.5"

[jobs.head]
every = "5s"
catchup = "all"
command = "{start}"

[jobs.mid]
needs = ["head"]
command = "{start}; sleep 0.3"

[jobs.tail]
needs = ["mid"]
command = "{start}"

[jobs.inbox]
watch = ["{inbox}/*.txt"]
command = "{start}"
"""


def offset_slots(job: str, period: int, after: datetime, until: datetime) -> list[datetime]:
    """``every = "<P>s"``: the instants ``k*P + (H mod P)`` s after the epoch, H the SHA-256
    of the job id as a big-endian integer (docs/scheduling.md), in ``(after, until]``."""
    off = int.from_bytes(hashlib.sha256(job.encode()).digest(), "big") % period
    k = int((after - EPOCH).total_seconds() - off) // period
    out = []
    while (at := EPOCH + timedelta(seconds=k * period + off)) <= until:
        if at > after:
            out.append(at)
        k += 1
    return out


def micros(d: datetime) -> int:
    return (d - EPOCH) // timedelta(microseconds=1)


@dataclass
class World:
    root: Path
    config: Path
    db: Path
    ledger: Path
    inbox: Path
    notify: socket.socket
    notify_path: str
    log: Path
    written: list[str] = field(default_factory=list)
    stop_writer: threading.Event = field(default_factory=threading.Event)


def make_world(root: Path) -> World:
    ledger, inbox = root / "ledger", root / "inbox"
    ledger.touch()
    inbox.mkdir()
    (root / "jobs.d").mkdir()
    (root / "jobs.d" / "torture.toml").write_text(
        JOBS.format(start=START.format(ledger=ledger), inbox=inbox)
    )
    cfg = root / "jobd.toml"
    cfg.write_text(
        textwrap.dedent("""\
        [daemon]
        jobs_dir = "jobs.d"
        state_dir = "var"
        socket = "var/jobd.sock"
        max_parallel = 16
        shutdown_grace = "5s"
        timezone = "UTC"
        """)
    )
    notify_path = str(root / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    return World(
        root, cfg, root / "var" / "jobd.db", ledger, inbox, sock, notify_path, root / "daemon.log"
    )


def start(w: World) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NOTIFY_SOCKET": w.notify_path, "JOBD_LOG_LEVEL": "WARNING"}
    with w.log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jobd", "--config", str(w.config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 30
    w.notify.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            if b"READY=1" in w.notify.recv(4096):
                return proc
        except TimeoutError:
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited: {w.log.read_text()[-3000:]}") from None
    proc.kill()
    raise SystemExit("the daemon did not get READY in 30 s")


def writer(w: World) -> None:
    n = 0
    while not w.stop_writer.wait(0.3):
        n += 1
        path = w.inbox / f"{n:05d}.txt"
        path.write_text(str(n))
        w.written.append(str(path))


def query(w: World, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{w.db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def marker_processes(instance: str) -> list[tuple[int, int, int]]:
    """(pid, run id, attempt) of every live process a daemon of ``instance`` started."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        env = dict(v.split(b"=", 1) for v in raw.split(b"\0") if b"=" in v)
        if (
            state != "Z"
            and env.get(b"JOBD_INSTANCE") == instance.encode()
            and b"JOBD_RUN_ID" in env
        ):
            out.append((int(entry), int(env[b"JOBD_RUN_ID"]), int(env[b"JOBD_ATTEMPT"])))
    return out


def stale(w: World) -> list[int]:
    """Job processes from an attempt older than the journal's, or of a finished run."""
    rows = {r: (s, a) for r, s, a in query(w, "SELECT run_id, state, attempt FROM runs")}
    out = []
    for pid, run_id, attempt in marker_processes(str(w.db.resolve())):
        state, journaled = rows.get(run_id, ("?", 0))
        if attempt < journaled or state not in ("queued", "running"):
            out.append(pid)
    return out


def settled(w: World, window_end: datetime) -> bool:
    if not w.db.exists():
        return False
    cursors = dict(query(w, "SELECT job_id, slot FROM cursors"))
    end = micros(window_end)
    if any(cursors.get(j, 0) < end for j in [*ALL_JOBS, *LATEST, "head"]):
        return False
    pending = query(
        w,
        "SELECT count(*) FROM runs WHERE state IN ('queued', 'running') "
        "AND (scheduled_for IS NULL OR scheduled_for <= ?)",
        (end,),
    )[0][0]
    return bool(pending == 0)


def torture(kills: int, seed: int, root: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    w = make_world(root)
    lives: list[datetime] = []
    first_cursor: dict[str, int] = {}
    finished_before: list[tuple[int, set[int]]] = []
    orphans: list[int] = []
    for n in range(kills):
        proc = start(w)
        if n == 0:  # files there before the watch's first look are its baseline, not changes
            threading.Thread(target=writer, args=(w,), daemon=True).start()
        lives.append(datetime.now(UTC))
        orphans += stale(w)
        time.sleep(rng.uniform(0.05, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if w.db.exists():
            for job, slot in query(w, "SELECT job_id, slot FROM cursors"):
                first_cursor.setdefault(job, slot)
            done = {
                r
                for (r,) in query(
                    w, "SELECT run_id FROM runs WHERE state NOT IN ('queued', 'running')"
                )
            }
            finished_before.append((len(w.ledger.read_text().splitlines()), done))
    proc = start(w)
    try:
        lives.append(datetime.now(UTC))
        orphans += stale(w)
        time.sleep(1)
        w.stop_writer.set()
        window_end = datetime.now(UTC)
        # The backlog: a slot of "slow" takes 2 s, one after another, and while the daemon
        # was mostly down they piled up; the last life works through them.
        first = EPOCH + timedelta(microseconds=first_cursor.get("slow", micros(window_end)))
        allowed = 120 + 2.5 * len(offset_slots("slow", 3, first, window_end))
        deadline = time.monotonic() + allowed
        while not settled(w, window_end):
            if time.monotonic() > deadline:
                raise SystemExit(f"the last life did not finish the window in {allowed:.0f} s")
            time.sleep(0.3)
        time.sleep(1.5)  # the flows of the last slots, the last watch changes
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    orphans += [pid for pid, _, _ in marker_processes(str(w.db.resolve()))]

    for job, slot in query(w, "SELECT job_id, slot FROM cursors"):
        first_cursor.setdefault(job, slot)
    runs = query(
        w,
        "SELECT run_id, job_id, state, scheduled_for, folded_slots, flow_id, "
        "changed_paths FROM runs",
    )
    finished = [r for r in runs if r[2] not in ("queued", "running")]
    own: dict[str, set[int]] = defaultdict(set)
    folded: dict[str, set[int]] = defaultdict(set)
    for _, job, _, slot, fold, _, _ in finished:
        if slot is not None:
            own[job].add(slot)
        folded[job].update(json.loads(fold))

    missing: list[str] = []
    for job, period in ALL_JOBS.items():
        after = EPOCH + timedelta(microseconds=first_cursor.get(job, micros(window_end)))
        missing += [
            f"{job} {s.isoformat()}"
            for s in offset_slots(job, period, after, window_end)
            if micros(s) not in own[job]
        ]
    unaccounted: list[str] = []
    n_folded = 0
    for job, period in LATEST.items():
        after = EPOCH + timedelta(microseconds=first_cursor.get(job, micros(window_end)))
        slots = offset_slots(job, period, after, window_end + timedelta(hours=1))
        for s in slots:
            if s > window_end:
                break
            if micros(s) in folded[job] and micros(s) not in own[job]:
                n_folded += 1
            if micros(s) in own[job] or micros(s) in folded[job]:
                continue
            # missed while down, and superseded by a newer slot missed with it
            if not any(s < life and any(s < t <= life for t in slots) for life in lives[1:]):
                unaccounted.append(f"{job} {s.isoformat()}")

    ledger = w.ledger.read_text().splitlines()
    starts = [line.split() for line in ledger if line.startswith("start ")]
    repeated = [
        f"run {r} attempt {a} started twice"
        for (r, a), n in Counter((s[1], s[2]) for s in starts).items()
        if n > 1
    ]
    for offset, done in finished_before:
        repeated += [
            f"finished run {line.split()[1]} started again"
            for line in ledger[offset:]
            if line.startswith("start ") and int(line.split()[1]) in done
        ]

    seen = {p for r in finished if r[1] == "inbox" for p in json.loads(r[6])}
    lost_watch = [p for p in w.written if p not in seen]
    flows: dict[str, dict[str, str]] = defaultdict(dict)
    for _, job, state, _, _, flow, _ in runs:
        if flow is not None and job in ("head", "mid", "tail"):
            flows[flow][job] = state
    lost_steps = [
        f"flow {f}: {steps}"
        for f, steps in flows.items()
        if steps.get("head") == "succeeded"
        and not all(steps.get(j) not in (None, "queued", "running") for j in ("mid", "tail"))
    ]
    w.notify.close()
    return {
        "kills": kills,
        "seed": seed,
        "exit_code": code,
        "slots_checked": sum(
            len(
                offset_slots(
                    j,
                    p,
                    EPOCH + timedelta(microseconds=first_cursor.get(j, micros(window_end))),
                    window_end,
                )
            )
            for j, p in {**ALL_JOBS, **LATEST}.items()
        ),
        "runs": len(runs),
        "watch_files": len(w.written),
        "flows": len(flows),
        "missing_slots": missing,
        "unaccounted_slots": unaccounted,
        "folded_slots": n_folded,
        "finished_runs_repeated": repeated,
        "orphans": sorted(set(orphans)),
        "lost_watch_changes": lost_watch,
        "lost_flow_steps": lost_steps,
    }


MUST_BE_ZERO = (
    "missing_slots",
    "unaccounted_slots",
    "finished_runs_repeated",
    "orphans",
    "lost_watch_changes",
    "lost_flow_steps",
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jobd-torture-", ignore_cleanup_errors=True) as tmp:
        result = torture(args.kills, args.seed, Path(tmp))
    result["seconds"] = round(time.monotonic() - started, 1)
    bad = [k for k in MUST_BE_ZERO if result[k]]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"torture: {args.kills} kills, seed {args.seed}, {result['seconds']} s: "
            f"{result['runs']} runs, {result['slots_checked']} slots checked, "
            f"{result['watch_files']} watched files, {result['flows']} flows"
        )
        for k in (*MUST_BE_ZERO, "folded_slots"):
            v = result[k]
            n = v if isinstance(v, int) else len(v)
            print(
                f"  {k.replace('_', ' ')}: {n}"
                + (f"  {v[:5]}" if not isinstance(v, int) and v else "")
            )
        print(f"  daemon exit code at the end: {result['exit_code']}")
    return 1 if bad or result["exit_code"] != 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
