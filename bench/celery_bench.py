"""Remote runs on Celery workers against local runs and a bare Celery round trip. Not a test.

    .venv/bin/python bench/celery_bench.py [-n 400] [--latency 100]

Starts a private redis-server (AOF, appendfsync always, as in production), two workers of two
prefork processes each on the remote queue, and a daemon in this process. Prints, in one run:

- throughput: N runs of ``true`` due at once, ``executor = "celery"`` vs the same job run
  locally (both journaled, 8 slots each), runs/s;
- latency, one run at a time: trigger (``run_job``) -> the command's first instruction
  (``date``), p50/p99, remote vs local; and a bare Celery round trip: ``send_task`` -> the
  task body starts, p50/p99, with the same broker and two workers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jobd.config.loader import load_config
from jobd.supervisor.daemon import Daemon
from tests.remote.conftest import RedisServer, World

JOBS = """
[jobs.remote_true]
executor = "celery"
queue = "bench.q"
overlap = "allow"
command = ["true"]

[jobs.local_true]
overlap = "allow"
command = ["true"]

[jobs.remote_stamp]
executor = "celery"
queue = "bench.q"
command = ["sh", "-c", "date +%s.%N >> {stamps}"]

[jobs.local_stamp]
command = ["sh", "-c", "date +%s.%N >> {stamps}"]
"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


CPU: dict[str, float] = {}  # job -> the daemon's CPU seconds per run, least seen


async def throughput(d: Daemon, job: str, n: int) -> float:
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        await d.run_job(job, {})
    await d.wait_idle()
    cpu = (time.process_time() - c0) / n
    CPU[job] = min(CPU.get(job, cpu), cpu)
    return n / (time.perf_counter() - t0)


async def latency(d: Daemon, job: str, n: int, stamps: Path) -> list[float]:
    out = []
    for _ in range(n):
        await anyio.Path(stamps).write_text("")
        t0 = time.time()
        await d.run_job(job, {})
        await d.wait_idle()
        text = await anyio.Path(stamps).read_text()
        out.append(float(text.split()[0]) - t0)
    return out


def bare_latency(world: World, n: int) -> list[float]:
    import redis
    from celery import Celery

    env = world.env()
    r = redis.Redis(unix_socket_path=str(world.redis.socket))
    app = Celery("bare", broker=f"redis+socket://{world.redis.socket}", set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)
    workers = []
    for i in range(2):
        log = world.root / f"bare-{i}.log"
        with open(log, "ab") as f:
            workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "bench.celery_bare",
                        "worker",
                        "-Q",
                        "bare.q",
                        "-c",
                        "2",
                        "-P",
                        "prefork",
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                        "-n",
                        f"bare{i}@%h",
                        "--loglevel",
                        "WARNING",
                    ],
                    env={
                        **env,
                        "BENCH_BROKER": f"redis+socket://{world.redis.socket}",
                        "BENCH_REDIS": f"unix://{world.redis.socket}",
                        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                    },
                    start_new_session=True,
                    stdout=f,
                    stderr=f,
                )
            )
    try:
        out = []
        for i in range(n + 5):
            key = f"bare:{i}"
            t0 = time.time()
            app.send_task("bare.ping", args=(key,), queue="bare.q")
            got = r.blpop([key], timeout=30)
            assert got is not None, "the bare worker did not answer"
            if i >= 5:  # the first ones wait for the workers to be ready
                out.append(float(got[1]) - t0)
        return out
    finally:
        for w in workers:
            w.terminate()
            w.wait()
        app.close()
        r.close()


async def main_async(world: World, n: int, n_lat: int) -> None:
    config = load_config(world.config)
    d = Daemon(config, control=False, watch_jobs_dir=False, handle_signals=False)
    stamps = world.root / "stamps"
    async with anyio.create_task_group() as tg:
        await tg.start(d.run)
        await throughput(d, "remote_true", 20)  # warm up: connections, pool processes
        await throughput(d, "local_true", 20)
        remote = [await throughput(d, "remote_true", n) for _ in range(2)]
        local = [await throughput(d, "local_true", n) for _ in range(2)]
        print(f"throughput, {n} runs of `true` due at once (best of 2):")
        print(f"  remote, 2 workers x 2 processes: {max(remote):7.1f} runs/s")
        print(
            f"  local, same job:                 {max(local):7.1f} runs/s   "
            f"(remote/local {max(remote) / max(local):.2f}x)"
        )
        print(
            f"  the daemon's CPU per run (this process, threads included): remote "
            f"{CPU['remote_true'] * 1e3:.2f} ms, local {CPU['local_true'] * 1e3:.2f} ms"
        )
        rl = await latency(d, "remote_stamp", n_lat, stamps)
        ll = await latency(d, "local_stamp", n_lat, stamps)
        d.stop()
    bl = bare_latency(world, n_lat)
    print(f"latency, one at a time, {n_lat} each (ms):          p50     p99")
    for name, xs in (
        ("trigger -> remote exec", rl),
        ("trigger -> local exec", ll),
        ("bare Celery send_task -> task start", bl),
    ):
        print(f"  {name:36s} {pct(xs, 0.5) * 1e3:7.1f} {pct(xs, 0.99) * 1e3:7.1f}")
    print(f"  remote p50 / bare Celery p50: {statistics.median(rl) / statistics.median(bl):.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=400)
    ap.add_argument("--latency", type=int, default=100)
    args = ap.parse_args()
    redis_server = RedisServer()
    redis_server.start()
    root = Path(tempfile.mkdtemp(prefix="jobd-celery-bench-"))
    world = World(root, redis_server)
    world.write(textwrap.dedent(JOBS).format(stamps=root / "stamps"))
    text = world.config.read_text().replace(
        'shutdown_grace = "2s"', 'shutdown_grace = "2s"\nmax_parallel = 8'
    )
    world.config.write_text(text + "max_parallel = 8\n")
    os.environ["JOBD_LOG_LEVEL"] = "WARNING"
    try:
        world.start_worker("bench.q", concurrency=2, name="a")
        world.start_worker("bench.q", concurrency=2, name="b")
        anyio.run(main_async, world, args.n, args.latency)
    finally:
        world.close()
        redis_server.stop()


if __name__ == "__main__":
    main()
