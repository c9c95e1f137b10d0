"""Authorization by SO_PEERCRED: jobctl runs in a forked child that has become another user.

(The child cannot exec a fresh interpreter: the one under test lives where other users may not
read. So it calls ``jobctl.main`` as imported, after ``setgid``/``setuid``.)
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings

import pytest

from jobd.cli import jobctl
from tests.control.conftest import serve

NOBODY = 65534  # nobody / nogroup

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")


def jobctl_as(uid: int, gid: int, *argv: str, timeout: float = 10.0) -> tuple[int, str, str]:
    """Run ``jobctl argv`` in a child as ``uid``/``gid`` with no supplementary groups."""
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    with warnings.catch_warnings():
        # 3.12+ warns about fork() with threads (the server's loop thread): the child only
        # runs jobctl's own code, which takes no lock another thread could hold
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 99
        try:
            os.close(r_out)
            os.close(r_err)
            sys.stdout = open(w_out, "w", closefd=False)  # noqa: SIM115
            sys.stderr = open(w_err, "w", closefd=False)  # noqa: SIM115
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = jobctl.main(list(argv))
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
        os._exit(code)
    os.close(w_out)
    os.close(w_err)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise AssertionError(f"jobctl {argv} as uid {uid} did not finish")
        time.sleep(0.01)
    with open(r_out) as out, open(r_err) as err:
        return os.waitstatus_to_exitcode(status), out.read(), err.read()


def test_other_user_may_read_but_not_change() -> None:
    with serve(socket_mode=0o666) as h:
        sock = str(h.path)
        code, out, err = jobctl_as(NOBODY, NOBODY, "--socket", sock, "status")
        assert code == 0, err
        assert "5 loaded" in out
        code, out, _ = jobctl_as(NOBODY, NOBODY, "--socket", sock, "--json", "runs")
        assert (code, out.strip()) == (0, "[]")
        for argv in (
            ["run", "hello"],
            ["pause", "hello"],
            ["cancel", "hold"],
            ["reload"],
            ["resume", "hello"],
            ["cancel", "1"],
        ):
            code, out, err = jobctl_as(NOBODY, NOBODY, "--socket", sock, *argv)
            assert code == 2, (argv, out, err)
            assert f"uid {NOBODY} may not {argv[0]}" in err
        assert h.api.changes == []  # nothing happened
        assert h.api.paused == set()
        assert h.call("runs") == {"runs": []}


def test_socket_group_members_may_change() -> None:
    with serve(socket_mode=0o660, socket_group="nogroup") as h:
        sock = str(h.path)
        # the process's gid is the socket's group
        code, _, err = jobctl_as(NOBODY, NOBODY, "--socket", sock, "pause", "hello")
        assert code == 0, err
        assert h.api.paused == {"hello"}
    with serve(socket_mode=0o666, socket_group="nogroup") as h:
        # another gid, but the user database puts nobody in nogroup
        code, _out, err = jobctl_as(NOBODY, 1, "--socket", str(h.path), "pause", "hello")
        assert code == 0, err
        assert h.api.paused == {"hello"}


def test_socket_mode_keeps_others_out() -> None:
    with serve(socket_mode=0o660) as h:
        code, _out, err = jobctl_as(NOBODY, NOBODY, "--socket", str(h.path), "status")
        assert code == 3
        assert f"cannot reach the daemon at {h.path}" in err and "Permission denied" in err
