"""argv_for, daemon_python and read_env_file: plain functions, no event loop."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from jobd.config.model import CommandAction, EntrypointAction, ScriptAction
from jobd.executors.actions import ENTRYPOINT_RUNNER, argv_for, daemon_python, read_env_file


def test_command_argv() -> None:
    assert argv_for(CommandAction(command=("ls", "-l")), default_python="py") == ("ls", "-l")
    assert argv_for(CommandAction(command="a | b"), default_python="py") == (
        "/bin/sh",
        "-c",
        "a | b",
    )


def test_entrypoint_argv_passes_the_runner_source() -> None:
    action = EntrypointAction(entrypoint="pkg.mod:func", path=(Path("/p1"), Path("/p 2")))
    assert argv_for(action, default_python="/usr/bin/python3") == (
        "/usr/bin/python3",
        "-c",
        ENTRYPOINT_RUNNER,
        "pkg.mod:func",
        "/p1",
        "/p 2",
    )
    own = EntrypointAction(entrypoint="m:f", python="/venv/bin/python")
    assert argv_for(own, default_python="/usr/bin/python3")[0] == "/venv/bin/python"
    assert "import jobd" not in ENTRYPOINT_RUNNER and "from jobd" not in ENTRYPOINT_RUNNER


def test_script_argv() -> None:
    action = ScriptAction(script=Path("/srv/tools/clean.py"), args=("--all", "x y"))
    assert argv_for(action, default_python="/py") == ("/py", "/srv/tools/clean.py", "--all", "x y")
    assert argv_for(ScriptAction(script=Path("/s.py"), python="/other"), default_python="/py") == (
        "/other",
        "/s.py",
    )


def test_daemon_python_is_absolute_and_keeps_the_virtualenv() -> None:
    python = daemon_python()
    assert os.path.isabs(python)
    assert python == os.path.abspath(sys.executable)  # not resolved through symlinks


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.env"
    path.write_text(text)
    return path


def test_read_env_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
# a comment
PLAIN=value
export EXPORTED = spaced out   # trailing comment
EMPTY=
SINGLE='lit $HOME \\n # kept'
DOUBLE="tab\\tnew\\nquote\\" dollar\\$ back\\\\"
HASH=a#b
PLAIN=later wins
""",
    )
    assert read_env_file(path) == {
        "PLAIN": "later wins",
        "EXPORTED": "spaced out",
        "EMPTY": "",
        "SINGLE": "lit $HOME \\n # kept",
        "DOUBLE": 'tab\tnew\nquote" dollar$ back\\',
        "HASH": "a#b",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("OK=1\nnot a pair\n", r"job.env:2: expected KEY=VALUE, got 'not a pair'"),
        ("1BAD=x\n", r"job.env:1: expected KEY=VALUE"),
        ("\n\nQ='open\n", r"job.env:3: Q: unterminated single quote"),
        ('Q="open\n', r"job.env:1: Q: unterminated double quote"),
        ("Q='a' b\n", r"job.env:1: Q: unexpected text after the closing quote: 'b'"),
    ],
)
def test_read_env_file_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        read_env_file(write(tmp_path, text))


def test_read_env_file_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing.env: cannot read env file: No such file"):
        read_env_file(tmp_path / "missing.env")
    path = tmp_path / "bad.env"
    path.write_bytes(b"A=1\nB=\xff\n")
    with pytest.raises(ValueError, match=r"bad.env:2: not valid UTF-8"):
        read_env_file(path)
