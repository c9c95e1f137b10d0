"""The protocol's parts on their own: payload signing, task ids, broker URLs, the [celery]
table, and the claim / lease / fence / result scripts run by a real redis-server."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path
from typing import Any

import pytest

from jobd._exceptions import ConfigError
from jobd.config.loader import load_config, parse_job_file
from jobd.config.model import CeleryConfig
from jobd.remote import protocol as p
from jobd.remote.broker import kombu_url, make_app, sync_client
from tests.remote.conftest import REDIS, RedisServer, World, wait_for

KEY = b"0123456789abcdef0123456789abcdef"


def spec(**over: object) -> p.RemoteSpec:
    fields: dict[str, object] = dict(
        tid="jobd-abc-7-2-0",
        instance="abc",
        run_id=7,
        attempt=2,
        argv=("echo", "hi"),
        env={"JOBD_RUN_ID": "7"},
        cwd="/tmp",
        timeout=None,
        kill_grace=1.0,
        log_max_bytes=100,
        user=None,
        lease=3.0,
    )
    fields.update(over)
    return p.RemoteSpec(**fields)  # type: ignore[arg-type]


def test_task_id_names_instance_run_attempt_and_step() -> None:
    key = p.TaskKey(instance="3f2a", run_id=41, attempt=3, step=2)
    assert key.tid == "jobd-3f2a-41-3-2"
    assert p.Keys.of("3f2a").claim(key.tid) == "jobd:3f2a:claim:jobd-3f2a-41-3-2"


def test_signed_payloads_round_trip_and_others_are_refused() -> None:
    payload = spec().to_json()
    sig = p.sign(KEY, payload)
    # HMAC-SHA256 as the standard library computes it, over the exact payload text
    assert sig == hmac.new(KEY, payload.encode(), hashlib.sha256).hexdigest()
    assert p.RemoteSpec.from_json(p.verify(KEY, payload, sig)) == spec()
    with pytest.raises(p.PayloadRefused, match="unsigned"):
        p.verify(KEY, payload, None)
    with pytest.raises(p.PayloadRefused, match="unsigned"):
        p.verify(KEY, payload, "")
    with pytest.raises(p.PayloadRefused, match="bad signature"):
        p.verify(KEY, payload.replace("hi", "rm"), sig)
    with pytest.raises(p.PayloadRefused, match="bad signature"):
        p.verify(b"another key of sixteen+ bytes", payload, sig)
    with pytest.raises(p.PayloadRefused, match="does not match its run"):
        p.RemoteSpec.from_json(spec(tid="jobd-abc-8-2-0").to_json())
    with pytest.raises(p.PayloadRefused, match="malformed"):
        p.RemoteSpec.from_json('{"v": 1}')


def cfg(broker: str, **over: object) -> CeleryConfig:
    return CeleryConfig(broker=broker, signing_key=KEY, signing_key_file=Path("/k"), **over)  # type: ignore[arg-type]


def test_kombu_urls() -> None:
    assert kombu_url(cfg("redis://h:6379/2")) == "redis://h:6379/2"
    assert kombu_url(cfg("redis://h")) == "redis://h/0"
    assert (
        kombu_url(cfg("rediss://h:6380/0", username="jobd", password="p@ss/w"))
        == "rediss://jobd:p%40ss%2Fw@h:6380/0"
    )
    assert (
        kombu_url(cfg("unix:///run/redis.sock?db=3"))
        == "redis+socket:///run/redis.sock?virtual_host=3"
    )


def write_config(tmp_path: Path, celery: str, *, key_mode: int = 0o600) -> Path:
    key = tmp_path / "key"
    key.write_bytes(KEY)
    key.chmod(key_mode)
    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(0o640)
    path = tmp_path / "jobd.toml"
    path.write_text(f'[daemon]\nstate_dir = "var"\n\n[celery]\n{celery}')
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return [str(x).split(": ", 1)[1] for x in info.value.problems]


def test_celery_table(tmp_path: Path) -> None:
    ok = write_config(
        tmp_path,
        'broker = "rediss://broker.lan:6380/1"\n'
        'signing_key_file = "key"\nusername = "jobd"\npassword_file = "pw"\n'
        'lease = "10s"\nclaim_timeout = "2m"\nmax_parallel = 32\n',
    )
    c = load_config(ok).celery
    assert c is not None
    assert (
        c.broker,
        c.username,
        c.password,
        c.lease,
        c.claim_timeout,
        c.max_parallel,
        c.max_lost,
        c.signing_key,
    ) == ("rediss://broker.lan:6380/1", "jobd", "secret", 10.0, 120.0, 32, 3, KEY)
    assert problems(write_config(tmp_path, 'broker = "amqp://x"\nsigning_key_file = "key"\n')) == [
        "celery.broker: 'amqp://x': the scheme must be redis://, rediss:// or unix:// "
        "(a Redis server; jobd needs Redis streams beside the Celery queue)"
    ]
    assert problems(
        write_config(tmp_path, 'broker = "redis://u:pw@h/0"\nsigning_key_file = "key"\n')
    ) == [
        "celery.broker: 'redis://u:pw@h/0' holds credentials: write the user as username and "
        "the password in password_file, so the config file can stay world-readable"
    ]
    assert problems(write_config(tmp_path, 'broker = "redis://h/0"\n')) == [
        "celery.signing_key_file: missing key signing_key_file: workers run only payloads "
        "signed with it (make one with: head -c 32 /dev/urandom | base64 > FILE)"
    ]
    [msg] = problems(
        write_config(tmp_path, 'broker = "redis://h/0"\nsigning_key_file = "key"\n', key_mode=0o644)
    )
    assert msg.startswith("celery.signing_key_file: the signing key file ") and msg.endswith(
        "is readable by every user; chmod o-r it (e.g. 0640)"
    )
    assert problems(
        write_config(
            tmp_path,
            'broker = "redis://h/0"\nsigning_key_file = "key"\nlease = "0.5s"\nbrokr = 1\n',
        )
    ) == [
        "celery.lease: must be at least 1s (workers renew it every third of it)",
        "celery.brokr: unknown key; did you mean 'broker'?",
    ]


def test_job_keys(tmp_path: Path) -> None:
    plain = load_config(
        write_config(tmp_path, 'broker = "redis://h/0"\nsigning_key_file = "key"\n')
    )
    job = tmp_path / "j.toml"
    job.write_text(
        '[jobs.a]\ncommand = "x"\nexecutor = "celery"\nqueue = "jobd.gpu"\n'
        '[jobs.b]\ncommand = "x"\n'
    )
    a, b = parse_job_file(job, plain).jobs
    assert (a.executor, a.queue, b.executor, b.queue) == (
        "celery",
        "jobd.gpu",
        "local",
        "jobd.default",
    )
    job.write_text(
        '[jobs.a]\ncommand = "x"\nqueue = "q"\n'
        '[jobs.b]\ncommand = "x"\nimage = "busybox"\nexecutor = "celery"\n'
        '[jobs.c]\ncommand = "x"\nexecutor = "celery"\nqueue = "bad queue"\n'
        '[jobs.d]\ncommand = "x"\nexecutor = "docker"\n'
    )
    got = [str(x).split(": ", 1)[1] for x in parse_job_file(job, plain).problems]
    assert got == [
        "job 'a': queue: only applies with executor = \"celery\"",
        "job 'b': image: image runs through Docker, not with executor = \"celery\"",
        "job 'c': queue: 'bad queue' is not a valid queue name (letters, digits, '_', '.', "
        "'-', ':'; at most 128)",
        "job 'd': executor: executor = \"docker\" runs an image: add image (with command)",
    ]
    bare = tmp_path / "bare.toml"
    bare.write_text('[daemon]\nstate_dir = "var"\n')
    job.write_text('[jobs.a]\ncommand = "x"\nexecutor = "celery"\n')
    [msg] = [str(x).split(": ", 1)[1] for x in parse_job_file(job, load_config(bare)).problems]
    assert msg.startswith("job 'a': executor: executor = \"celery\" needs a [celery] table in ")


# --- the scripts, on a real server -----------------------------------------------------------


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_claim_lease_fence_and_result(redis_server: RedisServer) -> None:
    r = sync_client(cfg(redis_server.url))
    k, tid = p.Keys.of(f"t{time.monotonic_ns()}"), "jobd-x-1-1-0"
    try:
        claim = [k.claim(tid), k.lease(tid), k.out(tid)]
        fence = [k.claim(tid), k.lease(tid), k.done(tid)]
        assert r.eval(p.CLAIM, 3, *claim, "tok1", 300, "w1", 60) == 1
        assert r.eval(p.CLAIM, 3, *claim, "tok2", 300, "w2", 60) == 0  # a redelivery
        assert r.eval(p.FENCE, 3, *fence, 60) == b"alive"
        assert r.eval(p.RENEW, 2, k.claim(tid), k.lease(tid), "tok2", 300) == 0
        assert r.eval(p.RENEW, 2, k.claim(tid), k.lease(tid), "tok1", 300) == 1
        wait_for(lambda: not r.exists(k.lease(tid)), 2, "lease lapsed")
        assert r.eval(p.FENCE, 3, *fence, 60) == b"lapsed"
        assert r.eval(p.FENCE, 3, *fence, 60) == b"fenced"
        # the stale worker can neither renew nor report
        assert r.eval(p.RENEW, 2, k.claim(tid), k.lease(tid), "tok1", 300) == 0
        result = [k.claim(tid), k.results, k.done(tid), k.out(tid), k.lease(tid)]
        assert r.eval(p.RESULT, 5, *result, "tok1", tid, "{}", 60) == 0
        assert r.xlen(k.results) == 0

        other = "jobd-x-1-1-1"
        assert r.eval(p.FENCE, 3, k.claim(other), k.lease(other), k.done(other), 60) == b"unclaimed"
        assert (
            r.eval(p.CLAIM, 3, k.claim(other), k.lease(other), k.out(other), "t", 300, "w", 60) == 0
        )

        third = "jobd-x-1-1-2"
        assert (
            r.eval(p.CLAIM, 3, k.claim(third), k.lease(third), k.out(third), "t3", 5000, "w", 60)
            == 1
        )
        assert (
            r.eval(
                p.RESULT,
                5,
                k.claim(third),
                k.results,
                k.done(third),
                k.out(third),
                k.lease(third),
                "t3",
                third,
                '{"exit_code": 0}',
                60,
            )
            == 1
        )
        assert r.eval(p.FENCE, 3, k.claim(third), k.lease(third), k.done(third), 60) == b"done"
        entries: Any = r.xrange(k.results)
        [(entry_id, fields)] = entries
        assert r.get(k.done(third)) == entry_id and fields[b"tid"] == third.encode()
        out: Any = r.xrange(k.out(third))
        assert [f[b"k"] for _, f in out] == [b"claim", b"end"]
        assert not r.exists(k.lease(third))
    finally:
        for key in r.scan_iter(f"{k.prefix}:*"):
            r.delete(key)
        r.close()


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_a_worker_refuses_unsigned_and_badly_signed_payloads(world: World) -> None:
    world.write("")
    w = world.start_worker("t.sign")
    c = load_config(world.config).celery
    assert c is not None
    payload = spec(
        instance="sig", tid="jobd-sig-7-2-0", argv=("sh", "-c", f"echo ran > {world.root}/ran")
    ).to_json()
    app = make_app(c)
    try:
        app.send_task(p.TASK_NAME, args=(payload, ""), queue="t.sign")
        app.send_task(
            p.TASK_NAME,
            args=(payload, p.sign(b"not the key of this worker", payload)),
            queue="t.sign",
        )
        app.send_task(p.TASK_NAME, args=(payload,), queue="t.sign")
        wait_for(lambda: w.log.read_text().count("refused a task") == 3, 10, "refused", w.log)
    finally:
        app.close()
    text = w.log.read_text()
    assert "refused a task: unsigned payload" in text
    assert "refused a task: bad signature" in text
    assert not (world.root / "ran").exists()
