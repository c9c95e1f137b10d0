"""What ``pip install jobd`` brings: three dependencies and no aiohttp stack; container jobs
with the ``docker`` extra only; the JSON Schemas inside the package."""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the source (no build/ or egg-info in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "jobd", src / "jobd", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [whl] = out.glob("jobd-*.whl")
    return whl


def _metadata(whl: Path) -> email.message.Message:
    with zipfile.ZipFile(whl) as z:
        [name] = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(z.read(name).decode())


def test_plain_install_requires_four_packages_and_docker_is_an_extra(wheel: Path) -> None:
    reqs = [Requirement(r) for r in _metadata(wheel).get_all("Requires-Dist") or []]
    plain = sorted(r.name for r in reqs if r.marker is None)
    assert plain == ["aiosqlite", "anyio", "prometheus_client", "watchfiles"]
    docker = [
        str(r) for r in reqs if r.marker is not None and r.marker.evaluate({"extra": "docker"})
    ]
    assert docker == ['aiodocker>=0.27; extra == "docker"']
    assert not any(r.name == "tomli" for r in reqs)


def _closure(names: list[str]) -> set[str]:
    """Every distribution the named ones need, with no extras, as installed here."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_plain_install_pulls_no_aiohttp(wheel: Path) -> None:
    reqs = [Requirement(r) for r in _metadata(wheel).get_all("Requires-Dist") or []]
    closure = _closure([r.name for r in reqs if r.marker is None])
    assert {"anyio", "watchfiles", "aiosqlite", "idna"} <= closure
    assert not closure & {"aiohttp", "aiodocker", "multidict", "yarl", "frozenlist"}, closure


def test_the_schemas_ship_in_the_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        for name in ("jobfile.schema.json", "daemon.schema.json"):
            assert z.read(f"jobd/schema/{name}") == (ROOT / "jobd" / "schema" / name).read_bytes()
        assert "jobd/py.typed" in z.namelist()


def test_the_daemon_without_container_jobs_never_imports_aiodocker() -> None:
    code = (
        "import sys\n"
        "from jobd.cli.daemon import main\n"
        "import jobd.supervisor.daemon, jobd.control.server, jobd.config.schema\n"
        "assert main(['check', '--config', 'config/jobd.toml']) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiodocker', 'aiohttp')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.splitlines()[-1] == "[]"


def test_check_names_the_missing_extra_for_a_container_job(tmp_path: Path) -> None:
    (tmp_path / "jobs.d").mkdir()
    (tmp_path / "jobs.d" / "c.toml").write_text(
        '[jobs.ok]\ncommand = "true"\n\n[jobs.box]\nimage = "alpine:3"\ncommand = ["true"]\n'
    )
    (tmp_path / "jobd.toml").write_text('[daemon]\njobs_dir = "jobs.d"\n')
    code = (
        "import sys\n"
        "sys.modules['aiodocker'] = None  # not installed: the import system says so\n"
        "from jobd.cli.daemon import main\n"
        "sys.exit(main(['check', '--config', sys.argv[1]]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "jobd.toml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        "jobs.d/c.toml:5: job 'box': image: container jobs need the docker extra, and aiodocker "
        "is not installed: pip install 'jobd[docker]' into jobd's environment\n"
    )
    with_it = subprocess.run(
        [sys.executable, "-m", "jobd", "check", "--config", str(tmp_path / "jobd.toml")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (with_it.returncode, with_it.stdout) == (0, "ok: 2 jobs in 1 file\n")
