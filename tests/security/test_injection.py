"""Values never become shell code, on a real daemon: hostile params, upstream outputs,
``format()`` results and file names reach ``/bin/sh`` as data and run nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anyio

from jobd._enums import RunState
from jobd.config.model import DaemonConfig
from jobd.supervisor.daemon import Daemon
from tests.supervisor.conftest import make_config, running, settle

__all__ = ["make_config"]  # the fixture, shared with tests/supervisor

MakeConfig = Callable[..., DaemonConfig]

# every way of leaving a word or a quote, each trying to create a file named P<n>
PAYLOAD = (
    "a'b\"c $(touch P1) `touch P2` ; touch P3 ' ; touch P4 ; '\" ; touch P5 ; \" "
    '${IFS}touch${IFS}P6 \\" $(touch P7)'
)
MARKERS = [f"P{i}" for i in range(1, 8)]


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


def _pwned(root: Path) -> list[str]:
    return sorted(str(p) for p in root.rglob("P[0-9]*"))


async def _wait_finished(d: Daemon, job_id: str, n: int = 1) -> None:
    with anyio.fail_after(15):
        while (
            len(
                [
                    r
                    for r in await d.journal.list_runs(job_id=job_id, limit=None)
                    if r.state.finished
                ]
            )
            < n
        ):
            await d._wait_change()


async def test_params_outputs_and_format_run_nothing(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    every_context = (
        f"printf '%s\\n' ${{{{ params.x }}}} '${{{{ params.x }}}}' "
        f'"${{{{ params.x }}}}" > {out}/params.txt'
    )
    fmt = f"printf '%s\\n' ${{{{ format('<{{0}}>', params.x) }}}} > {out}/fmt.txt"
    up = ["sh", "-c", 'printf "x=%s\\n" "$PAYLOAD" >> "$JOBD_OUTPUT"']
    down = f"printf '%s\\n' ${{{{ needs.up.outputs.x }}}} > {out}/down.txt"
    stage = f"echo ${{{{ params.x }}}} > {out}/stage.txt"
    config = make_config(f"""
        [jobs.params]
        command = {_q(every_context)}
        params = {{ x = "harmless" }}

        [jobs.fmt]
        command = {_q(fmt)}
        params = {{ x = "harmless" }}

        [jobs.up]
        command = {json.dumps(up)}
        env = {{ PAYLOAD = {_q(PAYLOAD)} }}

        [jobs.down]
        needs = ["up"]
        command = {_q(down)}

        [jobs.staged]
        params = {{ x = "harmless" }}
        stages = [{{ name = "s", command = {_q(stage)} }}]
        """)
    async with running(config) as d:
        for job in ("params", "fmt", "staged"):
            await d.run_job(job, {"x": PAYLOAD})
        await d.run_job("up", {})
        await _wait_finished(d, "down")
        await settle(d)
        runs = await d.journal.list_runs(limit=None)
    assert {r.job_id: r.state for r in runs} == {
        j: RunState.SUCCEEDED for j in ("params", "fmt", "staged", "up", "down")
    }
    assert _pwned(tmp_path) == []
    assert (out / "params.txt").read_text() == f"{PAYLOAD}\n" * 3  # data, in every context
    assert (out / "fmt.txt").read_text() == f"<{PAYLOAD}>\n"
    assert (out / "down.txt").read_text() == f"{PAYLOAD}\n"
    assert (out / "stage.txt").read_text() == f"{PAYLOAD}\n"


async def test_a_hostile_file_name_adds_no_changed_path(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    script = (
        f'printf "%s" "$JOBD_CHANGED_PATHS" > {out}/lines; '
        f'cp "$JOBD_CHANGED_PATHS_FILE" {out}/nul; '
        f"for f in $JOBD_CHANGED_PATHS; do :; done"
    )
    config = make_config(f"""
        [jobs.ingest]
        watch = ["{inbox}/*.csv"]
        command = {_q(script)}
        """)
    hostile = inbox / "x\nw.toml\n.csv"
    shell = inbox / "$(touch P1).csv"
    async with running(config) as d:
        # one file at a time: each run's files say what it saw
        for path in (hostile, shell):
            await anyio.Path(path).write_text("1\n")
            with anyio.fail_after(15):
                while str(path) not in {
                    p
                    for r in await d.journal.list_runs(job_id="ingest", limit=None)
                    if r.state.finished
                    for p in r.changed_paths
                }:
                    await d._wait_change()
            await settle(d)
            [last, *_] = await d.journal.list_runs(job_id="ingest", limit=None)
            assert last.changed_paths == (str(path),)
            lines = (out / "lines").read_text().split("\n")
            names = (out / "nul").read_bytes().split(b"\0")
            if path is hostile:
                assert lines == [""]  # left out: no line but a whole path
            else:
                assert lines == [str(shell)]
            assert names == [str(path).encode(), b""]
    assert _pwned(tmp_path) == []
