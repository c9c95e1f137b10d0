"""/metrics and /healthz on the daemon's HTTP endpoint, over real HTTP: the metrics parse with
prometheus_client's parser and count the runs the journal holds; health answers probes
without the token."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from jobd.metrics import CONTENT_TYPE
from tests.supervisor.conftest import settle
from tests.web.conftest import dashboard
from tests.web.http import get

JOBS = """\
[jobs.ok]
command = "true"

[jobs.bad]
command = "exit 2"
"""
TOKEN = "s3cret-token-of-20-chars"


async def test_metrics_and_health_over_http(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(TOKEN)
    os.chmod(tmp_path / "token", 0o600)
    async with dashboard(tmp_path, JOBS, 'listen = "127.0.0.1:0"\ntoken_file = "token"') as (
        d,
        url,
    ):
        for job in ("ok", "ok", "bad"):
            await d.run_job(job, {})
        await settle(d)
        assert (await get(url + "/metrics")).status in (303, 401)  # behind the token
        r = await get(url + "/metrics", {"authorization": f"Bearer {TOKEN}"})
        assert r.status == 200 and r.headers["content-type"] == CONTENT_TYPE
        finished = {
            (s.labels["job"], s.labels["state"]): s.value
            for fam in text_string_to_metric_families(r.text)
            for s in fam.samples
            if s.name == "jobd_runs_finished_total"
        }
        runs = await d.runs(None, limit=100, state=None)
        assert finished == dict(Counter((x.job_id, str(x.state)) for x in runs))
        assert finished == {("ok", "succeeded"): 2, ("bad", "failed"): 1}

        r = await get(url + "/healthz")  # no token: probes need none
        assert (r.status, r.text) == (200, "ok\n")
        head = await get(url + "/healthz", method="HEAD")
        assert head.status == 200

        # The journal's writer reports a failed commit: unhealthy until one succeeds again.
        d.metrics.commit_observed(0.001, False)
        r = await get(url + "/healthz")
        assert (r.status, r.text) == (503, "unhealthy: journal\n")
        await d.run_job("ok", {})
        await settle(d)
        assert (await get(url + "/healthz")).status == 200
