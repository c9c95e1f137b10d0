"""Runs a remote run's command so that it cannot outlive the worker process that started it.

Started by the worker (with ``python -I -S -c``) as the leader of the run's process group:
``GUARD PARENT_PID ARGV...``. It asks the kernel for SIGUSR2 when its parent dies
(``PR_SET_PDEATHSIG``), starts the command in its own group, and then waits for it. On
SIGUSR2 it SIGKILLs the whole group, itself included. SIGTERM from the executor reaches
the command directly (same group); the guard ignores it and passes the command's exit on.
Standard library only."""

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die(*_: object) -> None:
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    parent, cmd = int(argv[0]), argv[1:]
    signal.signal(signal.SIGUSR2, _die)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGUSR2) != 0:
        sys.stderr.write("jobd: prctl(PR_SET_PDEATHSIG) failed\n")
        return 125
    if os.getppid() != parent:  # the worker died before the prctl
        _die()
    try:
        pid = os.posix_spawnp(cmd[0], cmd, os.environ,
                              setsigdef=(signal.SIGUSR2,))
    except OSError as exc:
        sys.stderr.write(f"jobd: cannot start {cmd[0]!r}: {exc.strerror}\n")
        return 127 if isinstance(exc, FileNotFoundError) else 126
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return 0
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        return 128 + sig
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
