"""Pure pieces of the protocol, the server's decisions and jobctl's formatting: no loop, no
socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobd._exceptions import (
    ConfigError,
    JobNotFound,
    JournalError,
    NotAllowed,
    Problem,
    RunNotFound,
)
from jobd.cli import _format as fmt
from jobd.cli import jobctl
from jobd.control import protocol as p
from jobd.control.server import Peer, error_for, may_change
from tests.control.conftest import REPO


def test_encode_is_one_ascii_line() -> None:
    line = p.encode(
        {
            "a": "é\n\udc80",
            "when": datetime(2024, 1, 2, tzinfo=UTC),
            "path": Path("/x"),
            "s": {"b", "a"},
        }
    )
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    line.decode("ascii")
    assert json.loads(line) == {
        "a": "é\n\udc80",
        "when": "2024-01-02T00:00:00+00:00",
        "path": "/x",
        "s": ["a", "b"],
    }
    with pytest.raises(TypeError):
        p.encode({"x": object()})


@pytest.mark.parametrize(
    "line, why",
    [
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"a": NaN}', "NaN"),
        (b"{", "Expecting"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b"1" * 5000, "parse error"),
    ],
)
def test_decode_errors(line: bytes, why: str) -> None:
    with pytest.raises(p.RPCError) as e:
        p.decode(line)
    assert e.value.code == p.PARSE_ERROR and why in e.value.message


@pytest.mark.parametrize(
    "obj, code, rid",
    [
        ([{"jsonrpc": "2.0", "method": "status", "id": 1}], p.INVALID_REQUEST, None),
        ("status", p.INVALID_REQUEST, None),
        ({"jsonrpc": "1.0", "method": "status", "id": 7}, p.INVALID_REQUEST, 7),
        ({"jsonrpc": "2.0", "method": 5, "id": "a"}, p.INVALID_REQUEST, "a"),
        ({"jsonrpc": "2.0", "method": "status", "id": [1]}, p.INVALID_REQUEST, None),
        ({"jsonrpc": "2.0", "method": "status", "id": True}, p.INVALID_REQUEST, None),
        ({"jsonrpc": "2.0", "method": "nope", "id": 2}, p.METHOD_NOT_FOUND, 2),
        ({"jsonrpc": "2.0", "method": "show", "params": ["x"], "id": 3}, p.INVALID_PARAMS, 3),
    ],
)
def test_parse_request_errors(obj: Any, code: int, rid: Any) -> None:
    with pytest.raises(p.RPCError) as e:
        p.parse_request(obj)
    assert (e.value.code, e.value.request_id) == (code, rid)


def test_parse_request() -> None:
    r = p.parse_request({"jsonrpc": "2.0", "method": "show", "params": {"job_id": "a"}, "id": 4})
    assert (r.method, dict(r.params), r.id, r.notification) == ("show", {"job_id": "a"}, 4, False)
    n = p.parse_request({"jsonrpc": "2.0", "method": "status"})
    assert n.notification and n.id is None and dict(n.params) == {}
    assert not p.parse_request({"jsonrpc": "2.0", "method": "status", "id": None}).notification
    with pytest.raises(p.RPCError) as e:
        p.parse_request({"jsonrpc": "2.0", "method": "nope"})
    assert e.value.notification and e.value.code == p.METHOD_NOT_FOUND


def test_check_params_defaults_and_errors() -> None:
    assert p.check_params("runs", {}) == {"job_id": None, "limit": 20, "state": None}
    assert p.check_params("runs", {"state": "failed", "limit": None})["limit"] == 20
    assert p.check_params("run", {"job_id": "a", "params": {"k": "v"}})["params"] == {"k": "v"}
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("show", {}, "needs 'job_id'"),
        ("show", {"job_id": 3}, "job_id: must be a job id"),
        ("show", {"job_id": "a", "x": 1}, "no param 'x'"),
        ("runs", {"limit": True}, "limit: must be an integer"),
        ("runs", {"limit": 0}, "between 1 and 10000"),
        ("runs", {"state": "done"}, "must be one of queued"),
        ("run", {"job_id": "a", "params": {"k": 1}}, "object of strings"),
        ("cancel", {}, "exactly one of"),
        ("cancel", {"run_id": 1, "job_id": "a"}, "exactly one of"),
        ("logs", {"run_id": -1}, "between 1"),
        ("subscribe", {"logs": True}, "needs 'run_id' or 'job_id'"),
        ("subscribe", {"logs": "yes"}, "true or false"),
    ]
    for method, params, why in bad:
        with pytest.raises(p.RPCError) as e:
            p.check_params(method, params)
        assert e.value.code == p.INVALID_PARAMS and why in e.value.message, (method, params)


@given(st.binary(max_size=12))
def test_utf8_complete_never_splits_a_character(data: bytes) -> None:
    text = "aé€😀"
    full = text.encode() + data
    for cut in range(len(full) + 1):
        n = p.utf8_complete(full[:cut])
        assert n <= cut and cut - n <= 3
        if cut <= len(text.encode()):
            full[:n].decode("utf-8")  # a clean prefix of valid text always decodes


def test_utf8_complete_examples() -> None:
    e = "€".encode()
    assert p.utf8_complete(b"ab" + e[:2]) == 2
    assert p.utf8_complete(b"ab" + e) == 5
    assert p.utf8_complete(b"\xff") == 1  # invalid bytes are the decoder's business
    assert p.utf8_complete(b"") == 0


def test_may_change() -> None:
    groups = {1000: {1000, 50}, 1001: {1001}}

    def lookup(uid: int) -> set[int]:
        return groups.get(uid, set())

    def check(uid: int, gid: int, group: int | None) -> bool:
        return may_change(Peer(1, uid, gid), daemon_uid=999, group_gid=group, user_groups=lookup)

    assert check(0, 0, None) and check(999, 5, None)  # root, the daemon's user
    assert not check(1000, 1000, None)
    assert check(1000, 1000, 50)  # supplementary member
    assert check(1001, 50, 50)  # primary gid of the process
    assert not check(1001, 1001, 50)


def test_error_for() -> None:
    cases: list[tuple[Exception, int]] = [
        (JobNotFound("a"), p.NOT_FOUND),
        (RunNotFound("3"), p.NOT_FOUND),
        (NotAllowed(5, "run"), p.REFUSED),
        (PermissionError("no"), p.REFUSED),
        (ConfigError([Problem("f.toml", "bad", key="k")]), p.CONFIG_INVALID),
        (ValueError("bad param"), p.INVALID_PARAMS),
        (JournalError("locked"), p.BAD_STATE),
        (RuntimeError("bug"), p.INTERNAL_ERROR),
    ]
    for exc, code in cases:
        assert error_for(exc).code == code, exc
    assert error_for(JobNotFound("a")).data == {"job_id": "a"}
    assert error_for(RunNotFound("42")).data == {"run_id": 42}
    assert error_for(ConfigError([Problem("f.toml", "bad", key="k")])).data == {
        "problems": ["f.toml: k: bad"]
    }
    assert "RuntimeError: bug" in error_for(RuntimeError("bug")).message


# --- jobctl's formatting and argument handling -------------------------------------------


def test_relative_and_duration() -> None:
    now = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert fmt.relative(now + timedelta(minutes=3, seconds=10), now) == "in 3m"
    assert fmt.relative(now - timedelta(hours=2, minutes=59), now) == "2h ago"
    assert fmt.relative(now - timedelta(days=3), now) == "3d ago"
    assert fmt.relative(now + timedelta(seconds=12), now) == "in 12s"
    assert fmt.relative(now, now) == "now"
    assert fmt.relative(None, now) == "-"
    assert [fmt.duration(s) for s in (0.25, 4.2, 42, 185, 7380, 277200)] == [
        "250ms",
        "4.2s",
        "42s",
        "3m 05s",
        "2h 03m",
        "3d 5h",
    ]
    assert fmt.clock(datetime(2024, 5, 1, 12, tzinfo=UTC)) == "2024-05-01 12:00:00 UTC"
    assert fmt.clock(fmt.parse_time("2024-05-01T12:00:00+02:00")) == "2024-05-01 12:00:00 +02:00"
    assert fmt.parse_time("garbage") is None and fmt.parse_time(None) is None


def test_table_aligns_on_visible_width() -> None:
    style = fmt.Style(colour=True)
    text = fmt.table(
        ["A", "B", "C"], [["x", style.state("failed"), "1"], ["longer", "ok", ""]], style
    )
    plain = [fmt._ANSI.sub("", line) for line in text.splitlines()]
    assert plain == ["A       B       C", "x       failed  1", "longer  ok"]
    assert "\x1b[31mfailed\x1b[0m" in text
    assert fmt.table(["A"], [["x"]], fmt.Style(colour=False)) == "A\nx"


def test_colour_only_on_a_tty_without_no_color() -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    tty: Any = Tty()
    assert fmt.wants_colour(tty, {})
    assert not fmt.wants_colour(tty, {"NO_COLOR": "1"})
    assert not fmt.wants_colour(tty, {"TERM": "dumb"})
    with open(os.devnull, "w") as f:
        assert not fmt.wants_colour(f, {})


def test_resolve_socket(tmp_path: Path) -> None:
    cfg = tmp_path / "etc" / "jobd.toml"
    cfg.parent.mkdir()
    cfg.write_text('[daemon]\nsocket = "../var/jobd.sock"\n')
    env = {"JOBD_CONFIG": str(cfg)}
    assert jobctl.resolve_socket("/a.sock", {"JOBD_SOCKET": "/b"}) == ("/a.sock", "--socket")
    assert jobctl.resolve_socket(None, {"JOBD_SOCKET": "/b", **env})[0] == "/b"
    assert jobctl.resolve_socket(None, env)[0] == str(tmp_path / "var" / "jobd.sock")
    cfg.write_text("[daemon]\nmax_parallel = 2\n")
    assert jobctl.resolve_socket(None, env)[0] == jobctl.DEFAULT_SOCKET
    cfg.write_text("[daemon\n")
    with pytest.raises(jobctl.Usage, match="JOBD_CONFIG"):
        jobctl.resolve_socket(None, env)
    with pytest.raises(jobctl.Usage, match="No such file"):
        jobctl.resolve_socket(None, {"JOBD_CONFIG": str(tmp_path / "missing.toml")})


def test_parse_args() -> None:
    a = jobctl.parse_args(["--json", "run", "etl", "-p", "a=1", "-p", "b=x=y", "--wait"])
    assert (a.command, a.job, a.param, a.wait, a.json, a.socket) == (
        "run",
        "etl",
        ["a=1", "b=x=y"],
        True,
        True,
        None,
    )
    assert jobctl._params(a.param) == {"a": "1", "b": "x=y"}
    with pytest.raises(jobctl.Usage):
        jobctl._params(["novalue"])
    b = jobctl.parse_args(["runs", "--json", "--socket", "/s", "--limit", "3"])
    assert (b.json, b.socket, b.limit, b.job) == (True, "/s", 3, None)
    assert jobctl._target("42", as_job=False) == {"run_id": 42}
    assert jobctl._target("42", as_job=True) == {"job_id": "42"}
    assert jobctl._target("etl", as_job=False) == {"job_id": "etl"}
    for bad in (["runs", "--limit", "0"], ["frobnicate"], [], ["show"]):
        with pytest.raises(SystemExit) as e:
            jobctl.parse_args(bad)
        assert e.value.code == 2


def test_jobctl_imports_no_asyncio() -> None:
    # what site loaded before (an editable install's finder, say) is not jobctl's doing
    code = (
        "import sys; before = set(sys.modules); import jobd.cli.jobctl as j; "
        "j.parse_args(['status']); "
        "bad = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in "
        "('asyncio', 'anyio', 'typing', 'dataclasses', 'pathlib', 'shutil')); print(bad)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.stdout.strip() == "[]"
