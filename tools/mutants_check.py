"""After ``mutmut run``: fail on a surviving mutant that docs/mutation-testing.md does not list.

Each listed mutant has a written reason there (an equivalent mutant, or an open item). A
mutant that survives and is not listed is a gap in the tests: write the test that kills it,
or list it with the reason it cannot be killed.

    python tools/mutants_check.py          # after mutmut run (tox -e mutants does both)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "mutation-testing.md"
NOT_KILLED = ("survived", "no tests", "suspicious")  # a timeout is noticed: the tests hang


def survivors(results: str) -> list[str]:
    """Mutant names from ``mutmut results`` that the tests did not kill."""
    out = []
    for line in results.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name and status in NOT_KILLED:
            out.append(name)
    return sorted(out)


def listed(doc: str) -> set[str]:
    return set(re.findall(r"`(jobd\.[^`\s]+__mutmut_\d+)`", doc))


def main() -> int:
    results = subprocess.run(
        ["mutmut", "results"], capture_output=True, text=True, check=True
    ).stdout
    alive = survivors(results)
    known = listed(DOC.read_text(encoding="utf-8"))
    new = [m for m in alive if m not in known]
    gone = sorted(known - set(alive))
    print(f"{len(alive)} mutants not killed, {len(alive) - len(new)} of them listed in {DOC.name}")
    if gone:
        print(f"{len(gone)} listed mutants are killed now (or renamed): drop them from the list")
    for m in new:
        print(f"not killed and not listed: {m}  (mutmut show {m})")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
