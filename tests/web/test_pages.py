"""The dashboard against a real daemon: every page over real HTTP, values escaped, env values
hidden, read-only, the token, logs only where allowed, keyset paging, live streams."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest

from jobd._enums import RunState, TriggerKind
from jobd.journal.abc import RunRecord
from tests.supervisor.conftest import settle
from tests.web.conftest import dashboard
from tests.web.http import events, get

HOSTILE = '<script>alert("x")</script>'
HOSTILE_ID = 'px:"><img src=x onerror=alert(2)> ../a b/..'
JOBS = """\
[jobs.evil]
command = '''echo '<script>alert("x")</script>'; echo 'note=<img src=x onerror=alert(1)>' >> "$JOBD_OUTPUT"'''
env = { SECRET = "hunter2-value" }
params = { note = "plain" }

[jobs.extract]
command = "exit 3"

[jobs.load]
needs = ["extract"]
command = "true"

[jobs.notify]
needs = ["extract"]
trigger_rule = "one_failed"
command = "true"

[jobs.slow]
command = ["sh", "-c", "echo first; sleep 30; echo never"]
"""


def _raw_hostile(html: str) -> list[str]:
    return [s for s in ("<script>alert", "<img src=x", '"><b>') if s in html]


async def test_every_page_renders_escaped_and_hides_env_values(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / '"><b>bad<img src=x>.toml').write_text("[jobs.x]\ncron = 5\n")
    # A [tool.scheduled] id may hold almost anything: markup, quotes, slashes, spaces.
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "pyproject.toml").write_text(
        '[project]\nname = "px"\nversion = "1"\n\n'
        f"[tool.scheduled.{json.dumps(HOSTILE_ID[3:])}]\n"
        'every = "day"\nentrypoint = "app.jobs:run"\n'
    )
    (tmp_path / "jobs.d" / "px.toml").symlink_to(tmp_path / "proj" / "pyproject.toml")
    async with dashboard(tmp_path, JOBS) as (d, url):
        evil = await d.run_job("evil", {"note": '"><b>' + HOSTILE})
        root = await d.run_job("extract", {})
        await settle(d)
        flow = str(root.run_id)
        pages = [
            "/",
            "/jobs/evil",
            "/why/evil",
            "/jobs/load",
            "/runs",
            "/runs?job=evil&state=succeeded&trigger=manual",
            f"/runs/{evil.run_id}",
            f"/flows/{flow}",
            "/timeline",
            "/timeline?hours=1",
        ]
        hostile = quote(HOSTILE_ID, safe="")
        pages += [f"/jobs/{hostile}", f"/why/{hostile}", f"/runs?job={hostile}"]
        for page in pages:
            r = await get(url + page)
            assert r.status == 200, (page, r.status, r.text[:500])
            assert _raw_hostile(r.text) == [], page
            assert "hunter2-value" not in r.text, page
        jobs = (await get(url + "/")).text
        assert f'href="/jobs/{hostile}"' in jobs  # one path segment, "/" and ".." quoted
        assert "px:&#34;&gt;&lt;img src=x onerror=alert(2)&gt; ../a b/.." in jobs
        assert (
            "<h1>px:&#34;&gt;&lt;img src=x onerror=alert(2)&gt; ../a b/..</h1>"
            in (await get(url + f"/jobs/{hostile}")).text
        )  # its own page, found and escaped
        assert "&lt;b&gt;bad&lt;img src=x&gt;.toml" in jobs  # the invalid file, escaped
        assert "jobd.toml" not in jobs and "cron" in jobs  # with its jobd check error
        job = (await get(url + "/jobs/evil")).text
        assert "&#34;SECRET&#34;: &#34;&lt;hidden&gt;&#34;" in job  # the name only
        run = (await get(url + f"/runs/{evil.run_id}")).text
        assert "&lt;img src=x onerror=alert(1)&gt;" in run  # the output, escaped
        assert "&#34;&gt;&lt;b&gt;&lt;script&gt;" in run  # the param, escaped
        flow_page = (await get(url + f"/flows/{flow}")).text
        nodes = dict(
            re.findall(r'<g class="node" data-job="([^"]+)" data-state="([^"]+)"', flow_page)
        )
        assert nodes == {
            "extract": "failed",
            "load": "upstream_failed"
            if "upstream_failed" in {str(s) for s in RunState}
            else "skipped",
            "notify": "succeeded",
        }
        edges = re.findall(r'data-up="([^"]+)" data-down="([^"]+)" data-rule="([^"]+)"', flow_page)
        assert sorted(edges) == [
            ("extract", "load", "all_success"),
            ("extract", "notify", "one_failed"),
        ]
        # A TCP port without a token is open to every local user: no logs there.
        assert (await get(url + f"/runs/{evil.run_id}/log")).status == 403
        seen = [e async for e in events(url + f"/runs/{evil.run_id}/events")]
        assert [name for name, _ in seen] == ["run", "nolog", "end"]
        assert (await get(url + "/runs/99999")).status == 404
        assert (await get(url + "/jobs/nope")).status == 404
        assert (await get(url + "/flows/424242")).status == 404
        assert (await get(url + "/runs?state=bogus")).status == 400


async def test_read_only_host_checked_and_headers(tmp_path: Path) -> None:
    async with dashboard(tmp_path, JOBS) as (_d, url):
        for method in ("POST", "PUT", "DELETE"):
            r = await get(url + "/", method=method)
            assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
        # A page elsewhere that rebinds its name to 127.0.0.1 sends its own Host: refused.
        r = await get(url + "/", {"host": "attacker.example:8750"})
        assert r.status == 421
        for host in ("[::1]:8750", "127.0.0.2", "LOCALHOST"):
            assert (await get(url + "/", {"host": host})).status == 200, host
        for host in ("127.0.0.1.attacker.example", "[::2]:80", "localhost.example:8750"):
            assert (await get(url + "/", {"host": host})).status == 421, host
        assert (await get(url + "/", method="HEAD")).status == 200
        r = await get(url + "/", {"host": "localhost:8750"})
        assert r.status == 200
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"


async def test_token_guards_everything_and_shows_logs(tmp_path: Path) -> None:
    token = "tok-" + "0123456789abcdef" * 2
    (tmp_path / "token").write_text(token + "\n")
    os.chmod(tmp_path / "token", 0o600)
    http = 'listen = "127.0.0.1:0"\ntoken_file = "token"'
    async with dashboard(tmp_path, JOBS, http) as (d, url):
        r = await get(url + "/")
        assert (r.status, r.headers["location"]) == (303, "/login")
        assert (await get(url + "/login")).status == 200
        assert (await get(url + "/events")).status == 401
        r = await get(url + "/runs?token=wrong-token-wrong-token")
        assert (r.status, r.headers["location"]) == (303, "/login")
        r = await get(url + "/runs?job=evil&token=" + token)
        assert (r.status, r.headers["location"]) == (303, "/runs?job=evil")
        assert r.headers["set-cookie"].startswith(f"jobd_token={token}; HttpOnly; Path=/;")
        assert "samesite=strict" in r.headers["set-cookie"].lower()
        assert (await get(url + "/", {"cookie": f"jobd_token={token}"})).status == 200
        assert (await get(url + "/", {"cookie": "jobd_token=nope"})).status == 303
        bearer = {"authorization": f"Bearer {token}"}
        assert (await get(url + "/", bearer)).status == 200
        # Another Host is fine with a token: it is what protects the port then.
        assert (await get(url + "/", {**bearer, "host": "dash.example:80"})).status == 200

        slow = await d.run_job("slow", {})
        got: list[tuple[str, dict[str, object]]] = []
        with anyio.fail_after(10):
            async for name, data in events(url + f"/runs/{slow.run_id}/events", bearer):
                got.append((name, data))
                if name == "log":
                    break
        # The first line arrives while the run still runs: the log is followed live.
        assert got[0][0] == "run"
        assert got[-1] == ("log", {"offset": 0, "text": "first\n"})
        assert (await d.get_run(slow.run_id)).state is RunState.RUNNING
        r = await get(url + f"/runs/{slow.run_id}/log", bearer)
        assert (r.status, r.text) == (200, "first\n")
        await d.cancel_run(slow.run_id)
        await settle(d)


async def test_unix_socket_takes_the_control_sockets_mode(tmp_path: Path) -> None:
    async with dashboard(
        tmp_path, JOBS, 'listen = "var/http.sock"', daemon='socket_mode = "0640"'
    ) as (d, url):
        sock = tmp_path / "var" / "http.sock"
        assert url == f"unix:{sock}"
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o640
        run = await d.run_job("evil", {})
        await settle(d)
        r = await get(f"http://localhost/runs/{run.run_id}/log", unix=str(sock))
        assert r.status == 200 and HOSTILE in r.text  # text/plain: logs as written
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert not sock.exists()


async def test_runs_pages_by_keyset_newest_first(tmp_path: Path) -> None:
    async with dashboard(tmp_path, JOBS) as (d, url):
        t = datetime.now(UTC) - timedelta(hours=1)
        runs = [
            RunRecord(
                run_id=d.journal.new_run_id(),
                job_id="extract" if n % 3 else "load",
                trigger=TriggerKind.MANUAL if n % 2 else TriggerKind.CRON,
                state=RunState.FAILED if n % 5 == 0 else RunState.SUCCEEDED,
                queued_at=t + timedelta(seconds=n),
                finished_at=t,
            )
            for n in range(120)
        ]
        await d.journal.put_runs(runs)
        ids = [r.run_id for r in runs][::-1]

        def listed(html: str) -> list[int]:
            return [int(i) for i in re.findall(r'<tr data-run="(\d+)"', html)]

        page1 = (await get(url + "/runs")).text
        assert listed(page1) == ids[:50]
        older = re.search(r'rel="next" href="([^"]+)"', page1)
        assert older is not None and older[1] == f"/runs?before={ids[49]}"
        page2 = (await get(url + older[1].replace("&amp;", "&"))).text
        assert listed(page2) == ids[50:100]
        # Failed and manual: n divisible by 5 and odd, so n = 115, 105, ..., 5.
        got = listed((await get(url + "/runs?state=failed&trigger=manual")).text)
        assert got == [runs[n].run_id for n in range(115, 0, -10)]
        failed = [r.run_id for r in runs[::-1] if r.state is RunState.FAILED]
        got = listed((await get(url + "/runs?state=failed")).text)
        assert got == failed and len(got) == 24
        got = listed((await get(url + "/runs?job=load&state=failed&trigger=cron")).text)
        assert got == [
            r.run_id
            for r in runs[::-1]
            if r.job_id == "load" and r.state is RunState.FAILED and r.trigger is TriggerKind.CRON
        ]


@pytest.mark.parametrize("path", ["/metrics"])
async def test_another_endpoint_is_one_registration(tmp_path: Path, path: str) -> None:
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from jobd.web import app

    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse("jobd_up 1\n")

    (tmp_path / "token").write_text("t" * 20)
    os.chmod(tmp_path / "token", 0o600)
    app.EXTRA_ROUTES.append(lambda api, config: [Route(path, metrics)])
    app.PUBLIC_PATHS.add(path)
    try:
        async with dashboard(tmp_path, JOBS, 'listen = "127.0.0.1:0"\ntoken_file = "token"') as (
            _d,
            url,
        ):
            r = await get(url + path)
            assert (r.status, r.text) == (200, "jobd_up 1\n")
            assert (await get(url + "/")).status == 303  # the rest still needs the token
    finally:
        app.EXTRA_ROUTES.pop()
        app.PUBLIC_PATHS.discard(path)
