"""``load_jobs``: all files together, and what a rejected file keeps from before."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from jobd.config.loader import load_jobs
from jobd.config.model import CommandAction, DaemonConfig, JobSet

Write = Callable[[Mapping[str, str]], list[Path]]


def job(job_id: str, command: str = "true", needs: tuple[str, ...] = ()) -> str:
    return f'[jobs.{job_id}]\ncommand = "{command}"\nneeds = {list(needs)!r}\n'.replace("'", '"')


def commands(jobset: JobSet) -> dict[str, object]:
    return {
        i: j.action.command for i, j in jobset.jobs.items() if isinstance(j.action, CommandAction)
    }


def test_rejected_file_keeps_its_previous_jobs(write_jobs: Write, config: DaemonConfig) -> None:
    write_jobs({"a.toml": job("x", "v1") + job("y", "v1"), "b.toml": job("z", "v1")})
    first = load_jobs(config)
    assert commands(first) == {"x": "v1", "y": "v1", "z": "v1"} and first.invalid == {}

    write_jobs(
        {"a.toml": job("x", "v2") + job("y", "v2") + "retries = -1\n", "b.toml": job("z", "v2")}
    )
    second = load_jobs(config, previous=first)
    assert commands(second) == {"x": "v1", "y": "v1", "z": "v2"}
    assert second.jobs["x"] == first.jobs["x"]
    assert second.invalid == {
        config.jobs_dir / "a.toml": (
            "jobs.d/a.toml:7: job 'y': retries: must be at least 0, got -1",
        )
    }

    # without a previous set, the bad file's jobs are simply not there
    assert commands(load_jobs(config)) == {"z": "v2"}

    # kept again on the next reload, as long as the file stays bad
    third = load_jobs(config, previous=second)
    assert commands(third) == {"x": "v1", "y": "v1", "z": "v2"}

    # fixed: the new definitions replace the kept ones
    write_jobs({"a.toml": job("x", "v3")})
    fourth = load_jobs(config, previous=third)
    assert commands(fourth) == {"x": "v3", "z": "v2"} and fourth.invalid == {}


def test_deleted_file_takes_its_jobs_along(write_jobs: Write, config: DaemonConfig) -> None:
    (a, _) = write_jobs({"a.toml": job("x"), "b.toml": job("z")})
    first = load_jobs(config)
    a.unlink()
    assert set(load_jobs(config, previous=first).jobs) == {"z"}


def test_duplicate_id_rejects_the_later_file(write_jobs: Write, config: DaemonConfig) -> None:
    write_jobs({"b.toml": job("x", "b") + job("only-b")})
    first = load_jobs(config)
    write_jobs({"a.toml": job("x", "a")})
    second = load_jobs(config, previous=first)
    # a.toml sorts first and wins x; b.toml is rejected but keeps only-b from before
    assert commands(second) == {"x": "a", "only-b": "true"}
    assert second.invalid == {
        config.jobs_dir / "b.toml": (
            "jobs.d/b.toml:1: job 'x': job id already defined in jobs.d/a.toml:1",
        )
    }


def test_kept_job_satisfies_new_needs(write_jobs: Write, config: DaemonConfig) -> None:
    write_jobs({"a.toml": job("extract")})
    first = load_jobs(config)
    write_jobs({"a.toml": "broken =", "b.toml": job("load", needs=("extract",))})
    second = load_jobs(config, previous=first)
    assert set(second.jobs) == {"extract", "load"}
    assert list(second.invalid) == [config.jobs_dir / "a.toml"]


def test_new_file_closing_a_cycle_with_a_kept_job_is_rejected(
    write_jobs: Write, config: DaemonConfig
) -> None:
    write_jobs({"a.toml": job("a", needs=("b",)), "b.toml": job("b", "v1")})
    first = load_jobs(config)
    write_jobs({"a.toml": "broken =", "b.toml": job("b", "v2", needs=("a",))})
    second = load_jobs(config, previous=first)
    # the kept a (needs b) stays; the new b would close a cycle, so b keeps its old version
    assert commands(second) == {"a": "true", "b": "v1"}
    assert second.invalid[config.jobs_dir / "b.toml"] == (
        "jobs.d/b.toml:3: job 'b': needs: needs cycle: a -> b -> a",
    )


def test_kept_job_whose_need_is_gone_is_dropped(write_jobs: Write, config: DaemonConfig) -> None:
    (a, _) = write_jobs({"a.toml": job("a"), "b.toml": job("b", needs=("a",))})
    first = load_jobs(config)
    a.unlink()
    write_jobs({"b.toml": "broken ="})
    second = load_jobs(config, previous=first)
    assert second.jobs == {}
    assert second.invalid == {
        config.jobs_dir / "b.toml": (
            "jobs.d/b.toml:1: invalid TOML: Invalid value (at the end of the file)",
            "jobs.d/b.toml:1: job 'b': previous definition no longer loaded: needs unknown job 'a'",
        )
    }


def test_every_loaded_set_is_closed_and_acyclic(write_jobs: Write, config: DaemonConfig) -> None:
    write_jobs(
        {
            "1.toml": job("a", needs=("b",)),
            "2.toml": job("b", needs=("c",)),
            "3.toml": job("c", needs=("a",)),
            "4.toml": job("d", needs=("a",)),
            "5.toml": job("e"),
        }
    )
    jobset = load_jobs(config)
    # the cycle rejects a, b and c's files; d then needs a job that is not loaded
    assert set(jobset.jobs) == {"e"}
    assert [line for lines in jobset.invalid.values() for line in lines] == [
        "jobs.d/1.toml:3: job 'a': needs: needs cycle: a -> b -> c -> a",
        "jobs.d/2.toml:3: job 'b': needs: needs cycle: a -> b -> c -> a",
        "jobs.d/3.toml:3: job 'c': needs: needs cycle: a -> b -> c -> a",
        "jobs.d/4.toml:3: job 'd': needs: unknown job 'a'",
    ]
