"""``strays``: with the subreaper flag set, a process orphaned by a run's job comes to the
daemon's leader thread, whichever thread spawned the job, and is seen there; the children
file is read anew on every call. Run in a child interpreter: the flag and the orphans are
that process's, not pytest's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""\
    import json, os, signal, subprocess, threading
    from jobd.executors.contain import become_subreaper, strays

    assert become_subreaper()
    seen = []
    ours = subprocess.Popen(["sleep", "30"])
    own = {ours.pid}
    t = threading.Thread(target=lambda: seen.append(strays(own)))  # first asked off the leader
    t.start()
    t.join()  # only our own child so far

    orphan = []
    def job():  # from a worker thread, as an executor thread might
        sh = subprocess.Popen(["sh", "-c", "setsid sleep 30 >/dev/null 2>&1 & echo $!"], stdout=subprocess.PIPE)
        orphan.append(int(sh.communicate()[0]))
    t = threading.Thread(target=job)
    t.start()
    t.join()
    seen.append(strays(own))  # the orphan was handed to the leader
    t = threading.Thread(target=lambda: seen.append(strays(own)))  # asked from another thread
    t.start()
    t.join()

    os.kill(orphan[0], signal.SIGKILL)
    os.waitpid(orphan[0], 0)
    seen.append(strays(own))  # gone and reaped: read anew, nothing left
    seen.append(strays(set()))  # our own child counts once it is not in ``own``
    ours.kill()
    ours.wait()
    print(json.dumps(seen))
    """)


def test_an_orphan_is_seen_at_the_leader_and_only_while_it_lives() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, True, True, False, True]
