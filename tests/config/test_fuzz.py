"""Random documents and random bytes: the loaders raise ``ConfigError`` or return, never
anything else, and every problem is one line."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobd._exceptions import ConfigError
from jobd.config.loader import JOB_KEYS, STAGE_KEYS, load_config, load_job_file, load_jobs
from jobd.config.model import DaemonConfig, JobSet, PoolConfig
from jobd.flows.graph import find_cycle

FUZZ = settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

WORDS = [
    "x",
    "",
    "30s",
    "0s",
    "1h30m",
    "day",
    "week",
    "fortnight",
    "@daily",
    "*/5 * * * *",
    "61 * * * *",
    "0 0 31 2 *",
    "${{ params.x }}",
    "${{",
    "${{ a == }}",
    "UTC",
    "Mars/Base",
    "queue",
    "skip",
    "all",
    "latest",
    "all_success",
    "m.n:f",
    "a:b",
    "m:",
    "../in/*.csv",
    "in/[x",
    "a**/b",
    "/abs/*.json",
    "db",
    "a",
    "b",
    "c",
    "JOBD_X",
    "1st",
    "\x7f",
    "line\nbreak",
    "é",
    "tab\there",
]
KEYS = (
    [k.name for k in JOB_KEYS]
    + [k.name for k in STAGE_KEYS]
    + ["crn", "bogus", "include", "exclude", "python", "A", "x"]
)
IDS = ["a", "b", "c", "load", "-x", "a b", "x" * 70]

scalars = st.one_of(
    st.sampled_from(WORDS),
    st.text(max_size=12),
    st.integers(-(2**70), 2**70),
    st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
job_tables = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


def _some(*choices: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(choices)


PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "cron": _some("*/5 * * * *", ["@daily", "0 3 * * 1"], "61 * * * *", []),
    "every": _some("day", "30s", "month", "fortnight", "0s"),
    "timezone": _some("UTC", "Europe/Berlin", "Mars/Base"),
    "watch": _some("in/*.csv", ["a/*.txt", "/x/**/y"], "in/[x", [""]),
    "debounce": _some("1s", "250ms", "x"),
    "needs": _some([], ["b"], ["a"], ["zz"]),
    "trigger_rule": _some("all_done", "one_success", "nope"),
    "workdir": _some("work", "/tmp"),
    "env": st.dictionaries(_some("A", "B_1", "JOBD_X", "1x"), scalars, max_size=3),
    "env_file": _some(".env"),
    "user": _some("nobody"),
    "timeout": _some("1m", "0s", "1h30m"),
    "kill_grace": _some("0s", "5s"),
    "retries": st.integers(-1, 5),
    "retry_delay": _some("1s", "1"),
    "retry_backoff": st.floats(0, 4),
    "retry_max_delay": _some("10m"),
    "overlap": _some("queue", "skip", "replace", "allow", "sometimes"),
    "pool": _some("db", "nope"),
    "priority": st.integers(-5, 5),
    "catchup": _some("latest", "all", "none"),
    "start_deadline": _some("1h", "-1s"),
    "condition": _some("${{ params.x == 'y' }}", "params.x", "${{ a }}", "${{ x }} ${{ y }}"),
    "params": st.dictionaries(_some("x", "n", "bad name"), scalars, max_size=3),
    "matrix": st.fixed_dictionaries(
        {"py": st.lists(_some("3.11", "3.12", 1, True), max_size=3)},
        optional={
            "os": st.lists(_some("linux", "mac"), max_size=2),
            "include": st.lists(
                st.dictionaries(_some("py", "os", "extra"), scalars, max_size=2), max_size=2
            ),
            "exclude": st.lists(
                st.dictionaries(_some("py", "os", "extra"), scalars, max_size=2), max_size=2
            ),
        },
    ),
    "max_parallel": st.integers(0, 3),
    "fail_fast": st.booleans(),
    "enabled": st.booleans(),
}
STAGE = st.fixed_dictionaries(
    {"command": _some("x", ["echo", "${{ matrix.py }}"])},
    optional={
        "name": _some("one", "two"),
        "condition": _some("true", "${{"),
        "timeout": _some("1s", "x"),
        "retries": st.integers(-1, 2),
        "continue_on_error": st.booleans(),
        "env": PLAUSIBLE["env"],
    },
)
RUNS = st.one_of(
    st.fixed_dictionaries({"command": _some("x", ["echo", "${{ params.x }}"], ["", "y"])}),
    st.fixed_dictionaries(
        {"entrypoint": _some("a.b:c", "bad")},
        optional={"python": _some("python3", "../venv/bin/python")},
    ),
    st.fixed_dictionaries(
        {"script": _some("s.py")}, optional={"args": st.lists(_some("-v", "${{ params.x }}"))}
    ),
    st.fixed_dictionaries({"stages": st.lists(STAGE, max_size=3)}),
    st.fixed_dictionaries({"image": _some("alpine"), "command": _some("x")}),
)
plausible_jobs = st.tuples(RUNS, st.fixed_dictionaries({}, optional=PLAUSIBLE)).map(
    lambda parts: {**parts[0], **parts[1]}
)
plausible_documents = st.fixed_dictionaries(
    {"jobs": st.dictionaries(_some("a", "b", "c"), plausible_jobs, min_size=1, max_size=3)}
)

documents = st.fixed_dictionaries(
    {},
    optional={
        "jobs": st.one_of(st.dictionaries(st.sampled_from(IDS), job_tables, max_size=3), values),
        "tool": st.fixed_dictionaries(
            {},
            optional={
                "scheduled": st.dictionaries(st.sampled_from(IDS), job_tables, max_size=2),
                "other": values,
            },
        ),
        "project": st.just({"name": "x"}),
        "job": values,
    },
)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_lines(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """TOML text with ``[a.b]`` headers for tables of tables, inline values below."""
    tables = {k: v for k, v in doc.items() if isinstance(v, dict) and len(prefix) < 2}
    for k, v in doc.items():
        if k not in tables:
            yield f"{json.dumps(k)} = {toml_value(v)}"
    for k, v in tables.items():
        yield "[" + ".".join(json.dumps(p) for p in (*prefix, k)) + "]"
        yield from toml_lines(v, (*prefix, k))


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def config_for(base: Path) -> DaemonConfig:
    return DaemonConfig(
        path=None,
        jobs_dir=base,
        state_dir=base,
        socket=base / "s",
        timezone="UTC",
        pools={"db": PoolConfig(name="db", max_parallel=1)},
    )


def check_job_file(path: Path, config: DaemonConfig) -> None:
    try:
        load_job_file(path, config)
    except ConfigError as e:
        assert e.problems
        for problem in e.problems:
            line = str(problem)
            assert "\n" not in line and "\r" not in line, line
            assert line.startswith(f"{path}") or line.startswith(path.name), line


def check_document(base: Path, doc: dict[str, Any], inline: bool) -> None:
    path = base / "doc.toml"
    text = (
        "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items())
        if inline
        else "\n".join(toml_lines(doc))
    )
    path.write_text(text + "\n", encoding="utf-8", errors="surrogatepass")
    check_job_file(path, config_for(base))


@FUZZ
@given(doc=documents, inline=st.booleans())
def test_random_documents(fuzz_dir: Path, doc: dict[str, Any], inline: bool) -> None:
    check_document(fuzz_dir, doc, inline)


@settings(FUZZ, max_examples=60)
@given(doc=plausible_documents, inline=st.booleans())
def test_plausible_documents(fuzz_dir: Path, doc: dict[str, Any], inline: bool) -> None:
    """Mostly valid jobs with a few bad values: the deep paths of validation."""
    check_document(fuzz_dir, doc, inline)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.lists(
            st.sampled_from(
                [
                    "[jobs.a]",
                    "[[jobs.a.stages]]",
                    'command = "x"',
                    "cron = [",
                    '"61 * * * *"',
                    "]",
                    "{",
                    "}",
                    "=",
                    "\n",
                    "'''",
                    '"""',
                    "#",
                    "[",
                    "env.A = 1",
                    "a.b.c = 2",
                    "[tool.scheduled.x]",
                    'every = "day"',
                    'entrypoint = "a:b"',
                    "\\",
                    "\x00",
                    "\xff",
                ]
            ),
            max_size=30,
        ).map(lambda xs: "\n".join(xs).encode("utf-8", "surrogatepass")),
    )
)
def test_random_bytes(fuzz_dir: Path, data: bytes) -> None:
    path = fuzz_dir / "bytes.toml"
    path.write_bytes(data)
    check_job_file(path, config_for(fuzz_dir))
    try:
        load_config(path)
    except ConfigError as e:
        assert all("\n" not in str(p) for p in e.problems)


@settings(FUZZ, max_examples=50)
@given(
    doc=st.dictionaries(
        st.sampled_from(["daemon", "pools", "x"]),
        st.one_of(
            values,
            st.dictionaries(
                st.sampled_from(
                    [
                        "jobs_dir",
                        "max_parallel",
                        "timezone",
                        "socket_mode",
                        "log_max_bytes",
                        "db",
                        "retention_days",
                        "shutdown_grace",
                    ]
                ),
                values,
                max_size=5,
            ),
        ),
        max_size=3,
    )
)
def test_random_daemon_configs(fuzz_dir: Path, doc: dict[str, Any]) -> None:
    path = fuzz_dir / "jobd.toml"
    path.write_text("\n".join(toml_lines(doc)) + "\n", encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as e:
        assert all("\n" not in str(p) for p in e.problems)


graph_jobs = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.tuples(
        st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), max_size=3, unique=True),
        st.booleans(),
    ),
    max_size=3,
)


def write_graph(base: Path, files: list[dict[str, tuple[list[str], bool]]]) -> None:
    for old in base.glob("*.toml"):
        old.unlink()
    for n, jobs in enumerate(files):
        text = "".join(
            f'[jobs.{i}]\ncommand = "x"\nneeds = {json.dumps(needs)}\n'
            + ("" if ok else "retries = -1\n")
            for i, (needs, ok) in jobs.items()
        )
        (base / f"{n}.toml").write_text(text or "# empty\n")


def check_jobset(jobset: JobSet) -> None:
    ids = set(jobset.jobs)
    assert all(n in ids for j in jobset.jobs.values() for n in j.needs)
    assert find_cycle({j.id: j.needs for j in jobset.jobs.values()}) is None
    for lines in jobset.invalid.values():
        assert all("\n" not in line for line in lines)


@settings(FUZZ, max_examples=60)
@given(before=st.lists(graph_jobs, max_size=4), after=st.lists(graph_jobs, max_size=4))
def test_loaded_sets_are_closed_and_acyclic(
    tmp_path_factory: pytest.TempPathFactory,
    before: list[dict[str, tuple[list[str], bool]]],
    after: list[dict[str, tuple[list[str], bool]]],
) -> None:
    base = tmp_path_factory.getbasetemp() / "graph"
    base.mkdir(exist_ok=True)
    config = config_for(base)
    write_graph(base, before)
    first = load_jobs(config)
    check_jobset(first)
    write_graph(base, after)
    second = load_jobs(config, previous=first)
    check_jobset(second)
    # a file that was accepted shows all of its jobs; a kept job comes from a rejected file
    for job in second.jobs.values():
        if job.source.file in second.invalid:
            assert first.jobs.get(job.id) == job
