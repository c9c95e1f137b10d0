"""``jobd check``: exit codes, output, and FILE arguments checked against jobs_dir."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from jobd.cli.check import main, run_check


def check(config: Path | None, *files: Path) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_check(config, list(files), out=out, err=err)
    return code, err.getvalue().splitlines(), out.getvalue()


def test_all_valid(workdir: Path) -> None:
    (workdir / "jobs.d" / "a.toml").write_text('[jobs.a]\ncommand = "x"\n[jobs.b]\ncommand = "y"\n')
    (workdir / "jobs.d" / "c.toml").write_text('[jobs.c]\ncommand = "x"\n')
    assert check(workdir / "jobd.toml") == (0, [], "ok: 3 jobs in 2 files\n")


def test_empty_jobs_dir(workdir: Path) -> None:
    assert check(workdir / "jobd.toml") == (0, [], "ok: 0 jobs in 0 files\n")


def test_problems_go_to_stderr(workdir: Path) -> None:
    (workdir / "jobs.d" / "etl.toml").write_text(
        '[jobs.load]\ncommand = "x"\ncron = "61 * * * *"\n'
    )
    (workdir / "jobs.d" / "ok.toml").write_text('[jobs.ok]\ncommand = "x"\n')
    assert check(workdir / "jobd.toml") == (
        1,
        [
            "jobs.d/etl.toml:3: job 'load': cron: '61 * * * *' is not a valid cron expression "
            "(minute 61 > 59)"
        ],
        "",
    )


def test_bad_config_stops_there(workdir: Path) -> None:
    (workdir / "jobd.toml").write_text("[daemon]\nmax_parallel = 0\njobs_dir = 3\n")
    assert check(workdir / "jobd.toml") == (
        1,
        [
            "jobd.toml:2: daemon.max_parallel: must be at least 1, got 0",
            "jobd.toml:3: daemon.jobs_dir: expected a string, got an integer (3)",
        ],
        "",
    )


def test_missing_jobs_dir_is_a_problem(workdir: Path) -> None:
    (workdir / "jobs.d").rmdir()
    assert check(workdir / "jobd.toml") == (
        1,
        ["jobs.d: cannot read jobs_dir: No such file or directory"],
        "",
    )


def test_default_config_from_the_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBD_CONFIG", str(workdir / "jobd.toml"))
    assert check(None) == (0, [], "ok: 0 jobs in 0 files\n")
    monkeypatch.setenv("JOBD_CONFIG", str(workdir / "other.toml"))
    assert check(None)[:2] == (1, ["other.toml: cannot read: No such file or directory"])


def test_named_files_only_report_themselves(workdir: Path) -> None:
    jobs = workdir / "jobs.d"
    (jobs / "broken.toml").write_text("oops")
    (jobs / "extract.toml").write_text('[jobs.extract]\ncommand = "x"\n')
    new = workdir / "new.toml"
    new.write_text('[jobs.load]\ncommand = "x"\nneeds = ["extract"]\n')
    assert check(workdir / "jobd.toml", new) == (0, [], "ok: 1 job in 1 file\n")


def test_named_file_is_checked_across_files(workdir: Path) -> None:
    (workdir / "jobs.d" / "extract.toml").write_text('[jobs.extract]\ncommand = "x"\n')
    new = workdir / "new.toml"
    new.write_text(
        '[jobs.extract]\ncommand = "y"\n[jobs.load]\ncommand = "x"\nneeds = ["extrakt"]\n'
    )
    code, err, _ = check(workdir / "jobd.toml", new)
    assert (code, err) == (
        1,
        ["new.toml:1: job 'extract': job id already defined in jobs.d/extract.toml:1"],
    )
    new.write_text('[jobs.load]\ncommand = "x"\nneeds = ["extrakt"]\n')
    assert check(workdir / "jobd.toml", new)[:2] == (
        1,
        ["new.toml:3: job 'load': needs: unknown job 'extrakt'; did you mean 'extract'?"],
    )


def test_named_file_stands_in_for_its_namesake(workdir: Path) -> None:
    (workdir / "jobs.d" / "etl.toml").write_text('[jobs.load]\ncommand = "old"\n')
    staged = workdir / "staging" / "etl.toml"
    staged.parent.mkdir()
    staged.write_text('[jobs.load]\ncommand = "new"\n')
    assert check(workdir / "jobd.toml", staged) == (0, [], "ok: 1 job in 1 file\n")
    # a file of jobs_dir named on the command line is checked once
    assert check(
        workdir / "jobd.toml", workdir / "jobs.d" / "etl.toml", Path("jobs.d/etl.toml")
    ) == (0, [], "ok: 1 job in 1 file\n")


def test_main_parses_arguments(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "jobs.d" / "a.toml").write_text('[jobs.a]\ncommand = "x"\n')
    assert main(["--config", "jobd.toml"]) == 0
    assert capsys.readouterr().out == "ok: 1 job in 1 file\n"
    assert main(["--config", "jobd.toml", "jobs.d/missing.toml"]) == 1
    assert capsys.readouterr().err == (
        "jobs.d/missing.toml: cannot read: No such file or directory\n"
    )
