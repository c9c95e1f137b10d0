"""The daemon config: defaults, relative paths, the extension keys, and its problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobd._exceptions import ConfigError
from jobd.config.loader import default_config_path, load_config
from jobd.config.model import DaemonConfig, PoolConfig
from jobd.triggers.timezones import machine_timezone


def write(workdir: Path, text: str | bytes) -> Path:
    path = workdir / "etc" / "jobd.toml"
    path.parent.mkdir(exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return [str(p) for p in e.value.problems]


def test_contract_example(workdir: Path) -> None:
    path = write(
        workdir,
        """\
[daemon]
jobs_dir = "jobs.d"        # relative paths resolve against this file's directory
state_dir = "../var"       # holds the journal (jobd.db) and run logs
socket = "../var/jobd.sock"
max_parallel = 8           # run slots for the whole daemon
shutdown_grace = "30s"     # SIGTERM: how long running jobs get before they are stopped
timezone = "UTC"           # default zone for cron and cadences; default: the machine's

[pools.db]                 # optional named pools; a job joins one with pool = "db"
max_parallel = 1
""",
    )
    assert load_config(path) == DaemonConfig(
        path=path,
        jobs_dir=workdir / "etc" / "jobs.d",
        state_dir=workdir / "var",
        socket=workdir / "var" / "jobd.sock",
        max_parallel=8,
        shutdown_grace=30.0,
        timezone="UTC",
        pools={"db": PoolConfig(name="db", max_parallel=1)},
    )


def test_defaults(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Chicago")
    config = load_config(write(workdir, ""))
    assert config == DaemonConfig(
        path=workdir / "etc" / "jobd.toml",
        jobs_dir=workdir / "etc" / "jobs.d",
        state_dir=Path("/var/lib/jobd"),
        socket=Path("/run/jobd/jobd.sock"),
        timezone="America/Chicago",
    )


def test_machine_timezone_without_tz(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    monkeypatch.delenv("TZ", raising=False)
    config = load_config(write(workdir, "[daemon]\n"))
    assert config.timezone == machine_timezone()


def test_extension_keys(workdir: Path) -> None:
    config = load_config(
        write(
            workdir,
            """\
[daemon]
socket_group = "jobd"
socket_mode = "0640"
log_max_bytes = "512KiB"
retention_runs = 50
retention_days = "1w"
""",
        )
    )
    assert (config.socket_group, config.socket_mode, config.log_max_bytes) == (
        "jobd",
        0o640,
        512 * 1024,
    )
    assert (config.retention_runs, config.retention_days) == (50, 7.0)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [('"0660"', 0o660), ('"660"', 0o660), ('"0o600"', 0o600), ("0o660", 0o660)],
)
def test_socket_mode_spellings(workdir: Path, mode: str, expected: int) -> None:
    config = load_config(write(workdir, f"[daemon]\nsocket_mode = {mode}\n"))
    assert config.socket_mode == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("1000", 1000),
        ('"10MiB"', 10 * 2**20),
        ('"2 MB"', 2_000_000),
        ('"1GiB"', 2**30),
        ('"100B"', 100),
    ],
)
def test_log_max_bytes_spellings(workdir: Path, size: str, expected: int) -> None:
    config = load_config(write(workdir, f"[daemon]\nlog_max_bytes = {size}\n"))
    assert config.log_max_bytes == expected


C = "etc/jobd.toml"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[daemon]\nmax_paralel = 4\n",
            [f"{C}:2: daemon.max_paralel: unknown key; did you mean 'max_parallel'?"],
        ),
        ("[deamon]\n", [f"{C}:1: deamon: unknown table; did you mean 'daemon'?"]),
        ("daemon = 1\n", [f"{C}:1: daemon: expected a table, got an integer (1)"]),
        (
            '[daemon]\nmax_parallel = "8"\n',
            [f"{C}:2: daemon.max_parallel: expected an integer, got a string ('8')"],
        ),
        (
            "[daemon]\nmax_parallel = 0\n",
            [f"{C}:2: daemon.max_parallel: must be at least 1, got 0"],
        ),
        (
            '[daemon]\nshutdown_grace = "30"\n',
            [
                f"{C}:2: daemon.shutdown_grace: '30' is not a duration; write a number and a unit (ms, "
                's, m, h, d, w), e.g. "250ms", "30s", "1h30m"'
            ],
        ),
        (
            '[daemon]\ntimezone = "Mars/Base"\n',
            [f"{C}:2: daemon.timezone: unknown timezone 'Mars/Base'"],
        ),
        (
            "[daemon]\nsocket_mode = 660\n",
            [
                f"{C}:2: daemon.socket_mode: 660 is not a file mode; write a string of octal digits, "
                'e.g. "0660" (or the TOML integer 0o660)'
            ],
        ),
        (
            '[daemon]\nsocket_mode = "rw-rw----"\n',
            [
                f"{C}:2: daemon.socket_mode: 'rw-rw----' is not a file mode; write octal digits, e.g. "
                '"0660"'
            ],
        ),
        (
            '[daemon]\nlog_max_bytes = "10 megs"\n',
            [
                f"{C}:2: daemon.log_max_bytes: '10 megs' is not a size; write bytes as an integer or a "
                'number with a unit (B, KB, MB, GB, KiB, MiB, GiB), e.g. "10MiB"'
            ],
        ),
        (
            "[daemon]\nlog_max_bytes = 0\n",
            [f"{C}:2: daemon.log_max_bytes: must be at least 1 byte"],
        ),
        (
            '[daemon]\nretention_days = "0d"\n',
            [f"{C}:2: daemon.retention_days: must be longer than 0s"],
        ),
        ('[daemon]\njobs_dir = ""\n', [f"{C}:2: daemon.jobs_dir: must not be empty"]),
        ("[pools.db]\n", [f"{C}:1: pools.db: missing key max_parallel"]),
        ("[pools.db]\nmax_parallel = 1\nsize = 2\n", [f"{C}:3: pools.db.size: unknown key"]),
        (
            '[pools."d b"]\nmax_parallel = 1\n',
            [
                f"{C}:1: pools.d b: 'd b' is not a valid pool name (letters, digits, '_', '.', '-'; at "
                "most 64)"
            ],
        ),
        (
            "[daemon\n",
            [f"{C}:1: invalid TOML: Expected ']' at the end of a table declaration (column 8)"],
        ),
        (b"\xff\xfe", [f"{C}:1: is not valid UTF-8 (byte 0xff: invalid start byte)"]),
        (
            '[daemon]\nmax_parallel = -1\ntimezone = "x"\n[pools.a]\nmax_parallel = 0\n',
            [
                f"{C}:2: daemon.max_parallel: must be at least 1, got -1",
                f"{C}:3: daemon.timezone: unknown timezone 'x'",
                f"{C}:5: pools.a.max_parallel: must be at least 1, got 0",
            ],
        ),
    ],
)
def test_config_problems(workdir: Path, text: str | bytes, expected: list[str]) -> None:
    assert problems(write(workdir, text)) == expected


def test_missing_config(workdir: Path) -> None:
    assert problems(workdir / "nope.toml") == ["nope.toml: cannot read: No such file or directory"]


def test_default_config_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBD_CONFIG", "/srv/jobd.toml")
    assert default_config_path() == Path("/srv/jobd.toml")
    monkeypatch.delenv("JOBD_CONFIG")
    assert default_config_path() == Path("/etc/jobd/jobd.toml")
    monkeypatch.setenv("JOBD_CONFIG", "")
    assert default_config_path() == Path("/etc/jobd/jobd.toml")


def test_symlinked_config_resolves_paths_from_its_target(workdir: Path) -> None:
    target = write(workdir, '[daemon]\nstate_dir = "state"\n')
    link = workdir / "jobd.toml"
    link.unlink()
    link.symlink_to(target)
    config = load_config(link)
    assert config.path == link and config.state_dir == workdir / "etc" / "state"
