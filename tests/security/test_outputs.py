"""A job that floods its ``JOBD_OUTPUT`` file cannot make the daemon hold it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jobd._enums import RunState
from jobd.config.model import DaemonConfig
from jobd.supervisor.runfiles import MAX_OUTPUTS_BYTES
from jobd.supervisor.runner import read_outputs
from tests.supervisor.conftest import make_config, running, settle

__all__ = ["make_config"]  # the fixture, shared with tests/supervisor

MakeConfig = Callable[..., DaemonConfig]


def test_only_the_first_mebibyte_of_outputs_is_read(tmp_path: Path) -> None:
    out = tmp_path / "out"
    line = b"k%06d=" + b"v" * 90 + b"\n"
    with out.open("wb") as f:
        f.write(b"first=1\n")
        for i in range(30_000):  # about 3 MB
            f.write(line.replace(b"%06d", b"%06d" % i))
        f.write(b"last=1\n")
    got = read_outputs(out)
    assert got["first"] == "1"
    assert "last" not in got
    assert sum(len(k) + len(v) + 2 for k, v in got.items()) <= MAX_OUTPUTS_BYTES
    assert all(len(v) == 90 for k, v in got.items() if k != "first")  # whole lines only


async def test_a_flooded_output_file_leaves_the_run_and_daemon_fine(
    make_config: MakeConfig,
) -> None:
    config = make_config("""
        [jobs.flood]
        command = 'echo a=1 >> "$JOBD_OUTPUT"; head -c 50000000 /dev/zero >> "$JOBD_OUTPUT"'
        """)
    async with running(config) as d:
        run = await d.run_job("flood", {})
        await settle(d, 30)
        done = await d.journal.get_run(run.run_id)
    assert done is not None and done.state is RunState.SUCCEEDED
    assert done.outputs["a"] == "1"
    assert sum(len(k) + len(v) for k, v in done.outputs.items()) <= MAX_OUTPUTS_BYTES
