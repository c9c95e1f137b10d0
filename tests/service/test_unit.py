"""The unit as systemd judges it: ``systemd-analyze verify`` clean, and the default profile's
exposure at most 2.0 by ``systemd-analyze security --offline=true`` (root mode, the drop-in,
is scored and documented too). ``.ci/run`` installs systemd-analyze (Debian's systemd)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "jobd.service"
ROOT_MODE = ROOT / "systemd" / "root-mode.conf"
ANALYZE = shutil.which("systemd-analyze")

pytestmark = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze is not installed (Debian's systemd package; .ci/run installs it)",
)


def _unit(tmp_path: Path, *, root_mode: bool = False) -> Path:
    """The unit with its ExecStart= pointing at this environment's jobd (verify checks that
    the binary exists; /opt/jobd is where the recipe installs it). A drop-in is read after
    the unit, as the same section's later lines: appended, it means the same."""
    text = UNIT.read_text()
    assert "ExecStart=/opt/jobd/bin/jobd --config /etc/jobd/jobd.toml\n" in text
    text = text.replace("ExecStart=/opt/jobd/bin/", f"ExecStart={Path(sys.executable).parent}/")
    if root_mode:
        text += "\n" + ROOT_MODE.read_text()
    out = tmp_path / "jobd.service"
    out.write_text(text)
    return out


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60, check=False)


def exposure(unit: Path) -> float:
    out = _analyze("security", "--offline=true", str(unit))
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert m is not None, out.stdout + out.stderr
    return float(m.group(1))


@pytest.mark.parametrize("root_mode", [False, True], ids=["default", "root-mode"])
def test_verify_is_clean(tmp_path: Path, root_mode: bool) -> None:
    out = _analyze("verify", str(_unit(tmp_path, root_mode=root_mode)))
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_default_profile_exposure_is_at_most_2(tmp_path: Path) -> None:
    score = exposure(_unit(tmp_path))
    assert score <= 2.0
    assert f"scores the unit **{score} OK**" in (ROOT / "docs" / "systemd.md").read_text()


def test_root_mode_exposure_is_what_the_docs_say(tmp_path: Path) -> None:
    score = exposure(_unit(tmp_path, root_mode=True))
    assert score <= 3.0
    assert f"exposure {score}" in (ROOT / "docs" / "systemd.md").read_text()


def test_the_unit_keeps_what_jobd_relies_on() -> None:
    lines = set(UNIT.read_text().splitlines())
    assert {
        "Type=notify",
        "WatchdogSec=30",
        "KillMode=mixed",
        "Delegate=yes",
        "User=jobd",
        "StateDirectory=jobd",
        "RuntimeDirectory=jobd",
        "SystemCallFilter=@chown",
        "ExecReload=/bin/kill -HUP $MAINPID",
    } <= lines
    assert "ProtectControlGroups=yes" not in lines  # the delegated subtree must stay writable
