"""The JSON Schema of job files: up to date, valid, and in step with the loader."""

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
from jobd.config.schema import build_schema, render

# jsonschema ships no type hints; reached through importlib so mypy needs no stubs for it
Draft202012Validator: Any = importlib.import_module("jsonschema").Draft202012Validator
ROOT = Path(__file__).parents[2]
SCHEMA_FILE = ROOT / "docs" / "schema" / "jobfile.schema.json"
EXAMPLES = sorted((ROOT / "config" / "jobs.d").glob("*.toml"))


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def errors(validator: Any, doc: dict[str, Any]) -> list[str]:
    return [e.message for e in validator.iter_errors(doc)]


def test_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text() == render(), (
        "regenerate: python -m jobd.config.schema > docs/schema/jobfile.schema.json")


def test_module_prints_the_schema() -> None:
    out = subprocess.run([sys.executable, "-m", "jobd.config.schema"], capture_output=True,
                         text=True, check=True, timeout=30, cwd=ROOT)
    assert out.stdout == render()


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
    '[jobs.a]\ncommand = "x"\nneeds = ["b"]\ntrigger_rule = "all_done"\n[jobs.b]\n'
    'command = "y"\n',
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
def test_valid_samples_pass_both(validator: Any, text: str,
                                 tmp_path: Path) -> None:
    from jobd.config.loader import load_config, load_job_file

    assert errors(validator, tomllib.loads(text)) == []
    (tmp_path / "jobd.toml").write_text('[daemon]\ntimezone = "UTC"\n[pools.db]\n'
                                        'max_parallel = 1\n')
    path = tmp_path / "x.toml"
    path.write_text(text)
    assert load_job_file(path, load_config(tmp_path / "jobd.toml"))


@pytest.mark.parametrize("text", INVALID)
def test_invalid_samples_fail_both(validator: Any, text: str,
                                   tmp_path: Path) -> None:
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
