"""The JSON Schemas of job files and of the daemon config: up to date, shipped in the package,
valid, and in step with the loader."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from jobd.config.loader import JOB_KEYS, STAGE_KEYS
from jobd.config.schema import SCHEMA_DIR, build_daemon_schema, build_schema, render

# jsonschema ships no type hints; reached through importlib so mypy needs no stubs for it
Draft202012Validator: Any = importlib.import_module("jsonschema").Draft202012Validator
ROOT = Path(__file__).parents[2]
SCHEMA_FILE = ROOT / "jobd" / "schema" / "jobfile.schema.json"
DAEMON_SCHEMA_FILE = ROOT / "jobd" / "schema" / "daemon.schema.json"
EXAMPLES = sorted((ROOT / "config" / "jobs.d").glob("*.toml"))


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(validator: Any, doc: dict[str, Any]) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


@pytest.fixture(scope="module")
def daemon_validator() -> Any:
    schema = json.loads(DAEMON_SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_committed_schemas_are_the_generated_ones() -> None:
    assert SCHEMA_FILE.parent == SCHEMA_DIR
    assert SCHEMA_FILE.read_text() == render("jobfile"), (
        "regenerate: python -m jobd.config.schema --write"
    )
    assert DAEMON_SCHEMA_FILE.read_text() == render("daemon"), (
        "regenerate: python -m jobd.config.schema --write"
    )


@pytest.mark.parametrize(("args", "name"), [([], "jobfile"), (["daemon"], "daemon")])
def test_module_prints_the_schema(args: list[str], name: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jobd.config.schema", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=ROOT,
    )
    assert out.stdout == render(name)


def test_schema_names_every_key_of_the_loader() -> None:
    defs = build_schema()["$defs"]
    assert list(defs["job"]["properties"]) == [k.name for k in JOB_KEYS]
    assert list(defs["stage"]["properties"]) == [k.name for k in STAGE_KEYS]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_files_are_valid(validator: Any, path: Path) -> None:
    assert errors(validator, tomllib.loads(path.read_text())) == []


VALID = [
    '[jobs.a]\ncommand = "x"\n',
    '[jobs.a]\ncommand = ["prog", "arg"]\ncron = ["@daily", "0 3 * * *"]\ntimezone = "UTC"\n',
    '[jobs.a]\nentrypoint = "pkg.mod:func"\npython = "/venv/bin/python"\nevery = "day"\n',
    '[jobs.a]\nscript = "tools/clean.py"\nargs = ["--dry-run"]\nwatch = "in/*.csv"\n'
    'debounce = "1s"\n',
    '[jobs.a]\nimage = "python:3.12-slim"\ncommand = ["python", "-V"]\n',
    '[jobs.a]\nstages = [{ name = "one", command = "x", timeout = "1m", retries = 2 },\n'
    '  { script = "s.py", args = ["a"], continue_on_error = true, env = { A = "1" } }]\n',
    '[jobs.a]\ncommand = "x"\nneeds = ["b"]\ntrigger_rule = "all_done"\n[jobs.b]\ncommand = "y"\n',
    '[jobs.a]\ncommand = "x"\nenv = { A = "1", N = 2 }\nparams = { p = "d" }\n'
    'overlap = "allow"\ncatchup = "none"\nstart_deadline = "1h"\npriority = -1\n'
    'retries = 3\nretry_delay = "1s"\nretry_backoff = 1.5\nretry_max_delay = "10m"\n'
    'timeout = "1h30m"\nkill_grace = "5s"\npool = "db"\nuser = "nobody"\nworkdir = "w"\n'
    'env_file = ".env"\nenabled = false\ncondition = "${{ params.p == \'d\' }}"\n',
    '[jobs.a]\ncommand = "x"\nmatrix = { py = ["3.11", "3.12"], include = [{ py = "3.13" }] }\n'
    'max_parallel = 2\nfail_fast = false\nexclude = [{ py = "3.11" }]\n',
    '[project]\nname = "x"\n[tool.scheduled.clean-files]\nevery = "day"\n'
    'entrypoint = "app.jobs:clean_files"\n[tool.ruff]\nline-length = 100\n',
]

INVALID = [
    '[jobs.a]\ncrn = "x"\ncommand = "x"\n',  # unknown key
    '[jobs.a]\ncron = "@daily"\n',  # nothing runs
    '[jobs.a]\ncommand = "x"\nscript = "y"\n',  # two things run
    '[jobs.a]\ncommand = "x"\nretries = "3"\n',  # wrong type
    '[jobs.a]\ncommand = "x"\nretries = -1\n',  # below the minimum
    '[jobs.a]\ncommand = "x"\noverlap = "sometimes"\n',  # bad enum
    '[jobs.a]\ncommand = "x"\ntimeout = "10"\n',  # not a duration
    '[jobs."-a"]\ncommand = "x"\n',  # bad id
    '[jobs.a]\nimage = "alpine"\n',  # image without command
    '[jobs.a]\ncommand = "x"\nargs = ["y"]\n',  # args without script
    '[jobs.a]\ncommand = "x"\nenv = { JOBD_X = "1" }\n',  # reserved name
    '[jobs.a]\ncommand = "x"\nstages = []\n',  # two things run
    '[jobs.a]\nstages = [{ command = "x", image = "y" }]\n',  # unknown stage key
    '[job.a]\ncommand = "x"\n',  # unknown table outside a pyproject
    '[tool.scheduled.a]\nevery = "2 days"\nentrypoint = "a:b"\n',  # not a spec cadence
    '[tool.scheduled.a]\nevery = "day"\n',  # missing entrypoint
    '[jobs.a]\nentrypoint = "no-colon"\n',  # not module:function
]


@pytest.mark.parametrize("text", VALID)
def test_valid_samples_pass_both(validator: Any, text: str, tmp_path: Path) -> None:
    from jobd.config.loader import load_config, load_job_file

    assert errors(validator, tomllib.loads(text)) == []
    (tmp_path / "jobd.toml").write_text(
        '[daemon]\ntimezone = "UTC"\n[pools.db]\nmax_parallel = 1\n'
    )
    path = tmp_path / "x.toml"
    path.write_text(text)
    assert load_job_file(path, load_config(tmp_path / "jobd.toml"))


@pytest.mark.parametrize("text", INVALID)
def test_invalid_samples_fail_both(validator: Any, text: str, tmp_path: Path) -> None:
    from jobd._exceptions import ConfigError
    from jobd.config.loader import load_config, load_job_file

    assert errors(validator, tomllib.loads(text)) != []
    (tmp_path / "jobd.toml").write_text('[daemon]\ntimezone = "UTC"\n')
    path = tmp_path / "x.toml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_job_file(path, load_config(tmp_path / "jobd.toml"))


def test_doc_examples_are_valid(validator: Any) -> None:
    from tests.config.test_examples import DOCS, toml_blocks

    for block in toml_blocks(DOCS):
        assert errors(validator, tomllib.loads(block)) == [], block


# --- the loader's invalid files: what the schema rejects too -----------------------------

CANNOT = {
    "nan backoff": "NaN is not a JSON number; a validator compares it as neither < nor >",
    "bad timezone": "the zones are the machine's tz database's, not a fixed list",
    "bad condition": "expression grammar",
    "bad expression in env": "expression grammar (function names)",
    "bad expression in args": "expression grammar (context names)",
    "bad expression in a stage": "expression grammar",
    "unknown pool": "pools are defined in the daemon config, another file",
    "stage names twice": "uniqueness of one key across array items",
    "matrix exclude names no dimension": "a reference between two keys' values",
    "matrix too large": "a product of array lengths",
    "needs itself": "a reference from a value to the table's own key",
    "needs an unknown job": "a reference to other tables (and files)",
    "needs cycle in a file": "a graph property",
    "id in both forms": "a reference between [jobs] and [tool.scheduled]",
    "hook of an unknown job": "a reference to other tables (and files)",
    "own hook": "a reference from a value to the table's own key",
}
"""Invalid single-file cases of tests/config/test_invalid.py the schema cannot reject, and why."""


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _single_file_cases() -> list[tuple[str, dict[str, Any]]]:
    from tests.config.test_invalid import CASES

    out = []
    for c in CASES:
        text = next(iter(c.files.values()))
        if len(c.files) != 1 or not isinstance(text, str):
            continue  # several files, bytes or special files: not a document
        if text.count("[") > 40 or text.count(".") > 40:
            continue  # nesting beyond what a recursive parser and validator walk
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            continue  # not TOML: no document to validate
        if _depth(doc) > 32:
            continue  # the loader's limit; a validator would recurse as deep
        out.append((c.name, doc))
    return out


@pytest.mark.parametrize(
    ("name", "doc"), _single_file_cases(), ids=[n for n, _ in _single_file_cases()]
)
def test_schema_rejects_what_it_can_of_the_invalid_files(
    validator: Any, name: str, doc: dict[str, Any]
) -> None:
    if name in CANNOT:
        assert errors(validator, doc) == [], f"now rejected: drop {name!r} from CANNOT"
    else:
        assert errors(validator, doc) != []


def test_schema_rejects_most_kinds_the_loader_rejects() -> None:
    assert len(CANNOT) == 16
    assert len(_single_file_cases()) - len(CANNOT) >= 50


@pytest.mark.parametrize(
    "text",
    [
        '[jobs.a]\ncommand = "x"\ncron = "*/15 9-17 * jan-MAR mon-fri"\n',
        '[jobs.a]\ncommand = "x"\ncron = "30 0 12 ? * 7"\n',
        '[jobs.a]\ncommand = "x"\ncron = "@midnight"\nwatch = ["in/**/*.[ch]", "[!x]?.log"]\n',
        '[jobs.a]\ncommand = "echo ${{ params.x }} $HOME ${x}"\nparams = { x = "1" }\n',
        '[jobs.a]\ncommand = "x"\nevery = " 1h30m "\ntimeout = "0.5s"\nstart_deadline = "0h1m"\n',
    ],
)
def test_refined_patterns_accept_valid_values(validator: Any, text: str, tmp_path: Path) -> None:
    from jobd.config.loader import load_config, load_job_file

    assert errors(validator, tomllib.loads(text)) == []
    (tmp_path / "jobd.toml").write_text('[daemon]\ntimezone = "UTC"\n')
    path = tmp_path / "x.toml"
    path.write_text(text)
    assert load_job_file(path, load_config(tmp_path / "jobd.toml"))


# --- the daemon config ------------------------------------------------------------------

DAEMON_VALID = [
    (ROOT / "config" / "jobd.toml").read_text(),
    (ROOT / "systemd" / "jobd.toml").read_text(),
    '[daemon]\nsocket_mode = "0o600"\nlog_max_bytes = "2 MB"\nretention_days = "1w"\n',
    "[daemon]\nsocket_mode = 0o660\nlog_max_bytes = 1000\n[pools.db]\nmax_parallel = 1\n",
    '[http]\nlisten = "127.0.0.1:8750"\n',
]
DAEMON_INVALID = [  # the parsable cases of tests/config/test_config.py but the time zone's
    "[daemon]\nmax_paralel = 4\n",
    "[deamon]\n",
    "daemon = 1\n",
    '[daemon]\nmax_parallel = "8"\n',
    "[daemon]\nmax_parallel = 0\n",
    '[daemon]\nshutdown_grace = "30"\n',
    "[daemon]\nsocket_mode = 660\n",
    '[daemon]\nsocket_mode = "rw-rw----"\n',
    '[daemon]\nlog_max_bytes = "10 megs"\n',
    "[daemon]\nlog_max_bytes = 0\n",
    '[daemon]\nretention_days = "0d"\n',
    '[daemon]\njobs_dir = ""\n',
    "[pools.db]\n",
    "[pools.db]\nmax_parallel = 1\nsize = 2\n",
    '[pools."d b"]\nmax_parallel = 1\n',
    '[http]\ntoken_file = "t"\n',
    '[http]\nlisten = "127.0.0.1:8750"\nport = 1\n',
]


@pytest.mark.parametrize("text", DAEMON_VALID)
def test_daemon_schema_accepts_valid_configs(
    daemon_validator: Any, text: str, tmp_path: Path
) -> None:
    from jobd.config.loader import load_config

    assert errors(daemon_validator, tomllib.loads(text)) == []
    (tmp_path / "jobd.toml").write_text(text)
    load_config(tmp_path / "jobd.toml")


@pytest.mark.parametrize("text", DAEMON_INVALID)
def test_daemon_schema_rejects_invalid_configs(
    daemon_validator: Any, text: str, tmp_path: Path
) -> None:
    from jobd._exceptions import ConfigError
    from jobd.config.loader import load_config

    assert errors(daemon_validator, tomllib.loads(text)) != []
    (tmp_path / "jobd.toml").write_text(text)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "jobd.toml")


def test_daemon_schema_names_every_key_of_the_loader() -> None:
    from jobd.config.loader import DAEMON_KEYS

    daemon = build_daemon_schema()["properties"]["daemon"]
    assert list(daemon["properties"]) == [k.name for k in DAEMON_KEYS]
