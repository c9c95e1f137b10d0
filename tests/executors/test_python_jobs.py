"""Entrypoint and script jobs, run for real through argv_for and LocalExecutor."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from jobd.config.model import EntrypointAction, ScriptAction
from jobd.executors import LocalExecutor, ProcessResult, argv_for, daemon_python
from tests.executors.conftest import SpecFactory
from tests.executors.helpers import read_log

PYTHON = daemon_python()
MODULE = textwrap.dedent("""
    import asyncio
    import os
    import sys

    def sync():
        print("sync ran in", os.getcwd(), "path0", sys.path[0])

    async def coro():
        await asyncio.sleep(0)
        print("async ran")

    def gives_awaitable():
        return coro()

    def boom():
        print("before the error")
        raise RuntimeError("boom here")

    def bye():
        sys.exit(3)

    class Tasks:
        @staticmethod
        def nested():
            print("nested ran")

    def where():
        try:
            import jobd
        except ImportError:
            print("no jobd")
        else:
            print("jobd from", jobd.__file__)
        print("python", sys.executable)
""")


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    lib = tmp_path / "lib dir"
    lib.mkdir()
    (lib / "jobsmod.py").write_text(MODULE)
    (tmp_path / "work").mkdir()
    return lib


async def run_entrypoint(
    executor: LocalExecutor,
    make_spec: SpecFactory,
    lib: Path,
    entrypoint: str,
    python: str | None = None,
) -> ProcessResult:
    action = EntrypointAction(entrypoint=entrypoint, path=(lib,), python=python)
    argv = argv_for(action, default_python=PYTHON)
    with anyio.fail_after(20):
        return await executor.run(make_spec(argv, cwd=lib.parent / "work"))


async def test_sync_entrypoint_from_an_extra_path(
    executor: LocalExecutor, make_spec: SpecFactory, lib: Path, log: Path
) -> None:
    result = await run_entrypoint(executor, make_spec, lib, "jobsmod:sync")
    assert result.ok
    assert (await read_log(log)) == f"sync ran in {lib.parent / 'work'} path0 {lib}\n"


@pytest.mark.parametrize("entrypoint", ["jobsmod:coro", "jobsmod:gives_awaitable"])
async def test_async_entrypoint_is_awaited(
    executor: LocalExecutor, make_spec: SpecFactory, lib: Path, log: Path, entrypoint: str
) -> None:
    result = await run_entrypoint(executor, make_spec, lib, entrypoint)
    assert result.ok
    assert (await read_log(log)) == "async ran\n"


async def test_dotted_attribute(
    executor: LocalExecutor, make_spec: SpecFactory, lib: Path, log: Path
) -> None:
    assert (await run_entrypoint(executor, make_spec, lib, "jobsmod:Tasks.nested")).ok
    assert (await read_log(log)) == "nested ran\n"


async def test_raising_entrypoint_prints_traceback_and_exits_1(
    executor: LocalExecutor, make_spec: SpecFactory, lib: Path, log: Path
) -> None:
    result = await run_entrypoint(executor, make_spec, lib, "jobsmod:boom")
    assert result == ProcessResult(exit_code=1)
    text = await read_log(log)
    assert text.startswith("before the error\nTraceback (most recent call last):\n")
    assert f'File "{lib / "jobsmod.py"}", line' in text
    assert '"<string>"' not in text  # the runner's own frames are left out
    assert text.endswith("RuntimeError: boom here\n")


async def test_system_exit_passes_through(
    executor: LocalExecutor, make_spec: SpecFactory, lib: Path, log: Path
) -> None:
    assert await run_entrypoint(executor, make_spec, lib, "jobsmod:bye") == ProcessResult(
        exit_code=3
    )
    assert not await anyio.Path(log).exists()  # no output, no log file


@pytest.mark.parametrize(
    ("entrypoint", "message"),
    [
        ("nosuchmod:f", "jobd: entrypoint 'nosuchmod:f': no module named 'nosuchmod'"),
        ("jobsmod:nope", "jobd: entrypoint 'jobsmod:nope': 'jobsmod' has no attribute 'nope'"),
        ("jobsmod", "jobd: entrypoint 'jobsmod' is not of the form 'package.module:function'"),
    ],
)
async def test_bad_entrypoint_is_one_clear_line(
    executor: LocalExecutor,
    make_spec: SpecFactory,
    lib: Path,
    log: Path,
    entrypoint: str,
    message: str,
) -> None:
    assert await run_entrypoint(executor, make_spec, lib, entrypoint) == ProcessResult(exit_code=1)
    [line] = (await read_log(log)).splitlines()
    assert line.startswith(message)


@pytest.fixture
def base_python(lib: Path, env: dict[str, str]) -> tuple[str, bool]:
    """The interpreter behind the daemon's, outside any virtualenv, and whether it can
    import jobd from the job's directory (not where jobd is installed in a virtualenv)."""
    python = os.path.realpath(sys.executable)
    probe = subprocess.run(
        [python, "-c", "import jobd"],
        cwd=lib.parent / "work",
        env=env,
        capture_output=True,
        check=False,
    )
    return python, probe.returncode == 0


async def test_explicit_python_without_jobd(
    executor: LocalExecutor,
    make_spec: SpecFactory,
    lib: Path,
    log: Path,
    base_python: tuple[str, bool],
) -> None:
    python, has_jobd = base_python
    result = await run_entrypoint(executor, make_spec, lib, "jobsmod:where", python=python)
    assert result.ok
    lines = (await read_log(log)).splitlines()
    assert lines[-1] == f"python {python}"
    if not has_jobd:
        assert lines[0] == "no jobd"


async def test_script_with_args(
    executor: LocalExecutor, make_spec: SpecFactory, tmp_path: Path, log: Path
) -> None:
    script = tmp_path / "tools" / "show.py"
    await anyio.Path(script.parent).mkdir()
    await anyio.Path(script).write_text(
        "import sys\nprint(sys.argv[1:])\nsys.exit(len(sys.argv) - 1)\n"
    )
    argv = argv_for(ScriptAction(script=script, args=("a b", "--flag")), default_python=PYTHON)
    with anyio.fail_after(20):
        result = await executor.run(make_spec(argv))
    assert result == ProcessResult(exit_code=2)
    assert (await read_log(log)) == "['a b', '--flag']\n"
