"""Invalid job files: each gives exactly these one-line problems, and never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobd.config.loader import load_jobs
from jobd.config.model import DaemonConfig


class Special:
    """A jobs.d entry that is not a plain file's text."""

    def __init__(self, kind: str) -> None:
        self.kind = kind


DIRECTORY = Special("directory")
DANGLING = Special("dangling symlink")
HUGE = Special("huge")
FIFO = Special("fifo")

Content = str | bytes | Special


@dataclass(frozen=True)
class Case:
    name: str
    files: Mapping[str, Content]
    expected: tuple[str, ...]


def case(name: str, text: Content, *expected: str) -> Case:
    """A case of one file, ``t.toml``."""
    return Case(name, {"t.toml": text}, expected)


F = "jobs.d/t.toml"
OK = '[jobs.ok]\ncommand = "true"\n'

CASES = [
    # --- not TOML at all ------------------------------------------------------------------
    case(
        "bad toml value",
        '[jobs.a]\ncommand = "x"\ncron = \n',
        f"{F}:3: invalid TOML: Invalid value (column 8)",
    ),
    case(
        "unclosed header",
        '[jobs.a\ncommand = "x"\n',
        f"{F}:1: invalid TOML: Expected ']' at the end of a table declaration (column 8)",
    ),
    case(
        "key twice",
        '[jobs.a]\ncommand = "x"\ncommand = "y"\n',
        f"{F}:3: invalid TOML: Cannot overwrite a value (column 14)",
    ),
    case(
        "binary",
        b"\x7fELF\x02\x01\x01\x00\x00\x00",
        f"{F}:1: looks binary (holds a NUL byte), not a TOML job file",
    ),
    case(
        "invalid utf-8",
        b'[jobs.a]\ncommand = "caf\xe9"\n',
        f"{F}:2: is not valid UTF-8 (byte 0xe9: invalid continuation byte)",
    ),
    case(
        "deep nesting",
        "a = " + "[" * 40 + "]" * 40 + "\n",
        f"{F}: arrays or tables nested more than 32 deep",
    ),
    case(
        "nesting beyond the parser",
        "a = " + "[" * 5000 + "]" * 5000 + "\n",
        f"{F}: invalid TOML: arrays or tables nested more than 32 deep",
    ),
    case(
        "deep dotted header",
        "[" + "a." * 3000 + "a]\n",
        f"{F}: arrays or tables nested more than 32 deep",
    ),
    case("huge file", HUGE, f"{F}: is larger than 1 MiB, the limit for a job file; not read"),
    case("a directory", DIRECTORY, f"{F}: is a directory, not a job file"),
    case("dangling symlink", DANGLING, f"{F}: cannot read: No such file or directory"),
    case("a fifo", FIFO, f"{F}: is not a regular file; a job file must be one"),
    case(
        "empty file",
        "",
        f"{F}: no [jobs.<id>] or [tool.scheduled.<id>] tables: this file defines no jobs",
    ),
    # --- structure ------------------------------------------------------------------------
    case(
        "unknown top-level table",
        '[job.a]\ncommand = "x"\n',
        f"{F}:1: job: unknown key; did you mean 'jobs'? (a job file holds [jobs.<id>] tables)",
    ),
    case(
        "jobs not a table",
        "jobs = 3\n",
        f"{F}:1: jobs: expected a table of jobs, got an integer (3)",
    ),
    case(
        "job not a table",
        "[jobs]\na = 3\n",
        f"{F}:2: job 'a': expected a table ([jobs.a]), got an integer (3)",
    ),
    case(
        "bad job id",
        '[jobs."-x"]\ncommand = "x"\n',
        f"{F}:1: '-x' is not a valid job id: it must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}",
    ),
    case(
        "job id too long",
        f'[jobs.{"x" * 65}]\ncommand = "x"\n',
        f"{F}:1: '{'x' * 57}...' is not a valid job id: it must match "
        "[A-Za-z0-9][A-Za-z0-9_.-]{0,63}",
    ),
    case(
        "job id with a newline",
        '[jobs."a\\nb"]\ncommand = "x"\n',
        f"{F}:1: 'a\\nb' is not a valid job id: it must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}",
    ),
    # --- keys and types -------------------------------------------------------------------
    case(
        "unknown key with a hint",
        '[jobs.a]\ncommand = "x"\ncrn = "* * * * *"\n',
        f"{F}:3: job 'a': crn: unknown key; did you mean 'cron'?",
    ),
    case(
        "unknown key without a hint",
        '[jobs.a]\ncommand = "x"\ncolour = "red"\n',
        f"{F}:3: job 'a': colour: unknown key",
    ),
    case(
        "integer as a string",
        '[jobs.a]\ncommand = "x"\nretries = "3"\n',
        f"{F}:3: job 'a': retries: expected an integer, got a string ('3')",
    ),
    case(
        "boolean as a string",
        '[jobs.a]\ncommand = "x"\nenabled = "yes"\n',
        f"{F}:3: job 'a': enabled: expected a boolean (true or false), got a string ('yes')",
    ),
    case(
        "env as a string",
        '[jobs.a]\ncommand = "x"\nenv = "A=1"\n',
        f"{F}:3: job 'a': env: expected a table of strings, got a string ('A=1')",
    ),
    case(
        "command as a number",
        "[jobs.a]\ncommand = 3\n",
        f"{F}:2: job 'a': command: expected a string (run by /bin/sh -c) or a list of "
        "strings (exec'd), got an integer (3)",
    ),
    case(
        "every as a number",
        '[jobs.a]\ncommand = "x"\nevery = 30\n',
        f"{F}:3: job 'a': every: expected a string: a cadence (\"hour\") or a duration "
        '("30s"), got an integer (30)',
    ),
    case(
        "empty command", '[jobs.a]\ncommand = ""\n', f"{F}:2: job 'a': command: must not be empty"
    ),
    case(
        "empty program",
        '[jobs.a]\ncommand = ["", "x"]\n',
        f"{F}:2: job 'a': command: the program (first element) must not be empty",
    ),
    case(
        "NUL in a string",
        '[jobs.a]\ncommand = "a\\u0000b"\n',
        f"{F}:2: job 'a': command: must not hold a NUL character",
    ),
    case(
        "negative retries",
        '[jobs.a]\ncommand = "x"\nretries = -1\n',
        f"{F}:3: job 'a': retries: must be at least 0, got -1",
    ),
    case(
        "backoff below one",
        '[jobs.a]\ncommand = "x"\nretry_backoff = 0.5\n',
        f"{F}:3: job 'a': retry_backoff: must be at least 1, got 0.5",
    ),
    case(
        "nan backoff",
        '[jobs.a]\ncommand = "x"\nretry_backoff = nan\n',
        f"{F}:3: job 'a': retry_backoff: expected a number, got a float (nan)",
    ),
    # --- what runs ------------------------------------------------------------------------
    case(
        "two things run",
        '[jobs.a]\ncommand = "x"\nscript = "x.py"\n',
        f"{F}:3: job 'a': script: command and script both say what runs; keep exactly one "
        "of command, entrypoint, script or stages",
    ),
    case(
        "nothing runs",
        '[jobs.a]\ncron = "@daily"\n',
        f"{F}:1: job 'a': nothing to run: a job needs one of command, entrypoint, script or "
        "stages (or image with command)",
    ),
    case(
        "image without command",
        '[jobs.a]\nimage = "alpine"\n',
        f"{F}:2: job 'a': image: only applies with command",
    ),
    case(
        "args without script",
        '[jobs.a]\ncommand = "x"\nargs = ["y"]\n',
        f"{F}:3: job 'a': args: only applies with script",
    ),
    case(
        "bad entrypoint",
        '[jobs.a]\nentrypoint = "app.jobs.clean"\n',
        f"{F}:2: job 'a': entrypoint: 'app.jobs.clean' is not an entrypoint; write "
        '"package.module:function"',
    ),
    # --- triggers -------------------------------------------------------------------------
    case(
        "bad cron",
        '\n\n[jobs.load]\ncommand = "x"\n\ncron = "61 * * * *"\n',
        f"{F}:6: job 'load': cron: '61 * * * *' is not a valid cron expression (minute 61 > 59)",
    ),
    case(
        "bad cron in a list",
        '[jobs.a]\ncommand = "x"\ncron = [\n  "0 * * * *",\n  "* * *",\n]\n',
        f"{F}:5: job 'a': cron: '* * *' is not a valid cron expression (3 fields; expected 5 "
        "(minute hour day-of-month month day-of-week) or 6 with seconds first)",
    ),
    case(
        "bad cron alias",
        '[jobs.a]\ncommand = "x"\ncron = "@often"\n',
        f"{F}:3: job 'a': cron: '@often' is not a valid cron expression (unknown alias "
        "@often; use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, "
        "@hourly)",
    ),
    case(
        "bad cadence",
        '[jobs.a]\ncommand = "x"\nevery = "fortnight"\n',
        f"{F}:3: job 'a': every: 'fortnight' is not a cadence; use minute, hour, day, week, "
        'month or a duration such as "30s", "15m", "2h"',
    ),
    case(
        "bad duration",
        '[jobs.a]\ncommand = "x"\ntimeout = "10"\n',
        f"{F}:3: job 'a': timeout: '10' is not a duration; write a number and a unit (ms, s, "
        'm, h, d, w), e.g. "250ms", "30s", "1h30m"',
    ),
    case(
        "zero timeout",
        '[jobs.a]\ncommand = "x"\ntimeout = "0s"\n',
        f"{F}:3: job 'a': timeout: must be longer than 0s",
    ),
    case(
        "endless duration",
        '[jobs.a]\ncommand = "x"\nstart_deadline = "' + "9" * 400 + 'd"\n',
        f"{F}:3: job 'a': start_deadline: '{'9' * 57}...' is too long",
    ),
    case(
        "bad timezone",
        '[jobs.a]\ncommand = "x"\ncron = "@daily"\ntimezone = "Mars/Base"\n',
        f"{F}:4: job 'a': timezone: unknown timezone 'Mars/Base'",
    ),
    case(
        "bad glob",
        '[jobs.a]\ncommand = "x"\nwatch = ["in/*.csv", "in/[ab.csv"]\n',
        f"{F}:3: job 'a': watch: 'in/[ab.csv' has an unclosed '[' (write '[[]' for a literal '[')",
    ),
    case(
        "bad recursive glob",
        '[jobs.a]\ncommand = "x"\nwatch = "logs/a**/*.log"\n',
        f"{F}:3: job 'a': watch: 'logs/a**/*.log': '**' must be a whole path component, as "
        "in 'logs/**/*.csv'",
    ),
    case(
        "debounce without watch",
        '[jobs.a]\ncommand = "x"\ndebounce = "1s"\n',
        f"{F}:3: job 'a': debounce: only applies with watch",
    ),
    # --- enums ----------------------------------------------------------------------------
    case(
        "bad overlap",
        '[jobs.a]\ncommand = "x"\noverlap = "qeue"\n',
        f"{F}:3: job 'a': overlap: 'qeue' is not one of queue, skip, replace or allow; did "
        "you mean 'queue'?",
    ),
    case(
        "bad catchup",
        '[jobs.a]\ncommand = "x"\ncatchup = "every"\n',
        f"{F}:3: job 'a': catchup: 'every' is not one of latest, all or none",
    ),
    case(
        "bad trigger rule",
        '[jobs.a]\ncommand = "x"\n[jobs.b]\ncommand = "x"\n'
        'needs = ["a"]\ntrigger_rule = "all_sucess"\n',
        f"{F}:6: job 'b': trigger_rule: 'all_sucess' is not one of all_success, all_failed, "
        "all_done, one_success, one_failed, none_failed or none_skipped; did you mean "
        "'all_success'?",
    ),
    # --- expressions ----------------------------------------------------------------------
    case(
        "unclosed expression in command",
        '[jobs.a]\ncommand = ["echo", "${{ params.x"]\n',
        f"{F}:2: job 'a': command: unclosed '${{{{' at column 1 in '${{{{ params.x'; close "
        "it with '}}'",
    ),
    case(
        "bad condition",
        '[jobs.a]\ncommand = "x"\ncondition = "${{ params.x == }}"\n',
        f"{F}:3: job 'a': condition: unexpected end of expression at column 16 in 'params.x =='",
    ),
    case(
        "bad expression in env",
        '[jobs.a]\ncommand = "x"\n[jobs.a.env]\nOK = "1"\nBAD = "${{ lenght(params.x) }}"\n',
        f"{F}:5: job 'a': env: unknown function 'lenght' at column 5 in 'lenght(params.x)'; "
        "functions: contains, startsWith, endsWith, format, join, fromJson, toJson, case",
    ),
    case(
        "bad expression in args",
        '[jobs.a]\nscript = "x.py"\nargs = ["${{ foo.x }}"]\n',
        f"{F}:3: job 'a': args: unknown context 'foo' at column 5 in 'foo.x'; expressions "
        "may read params, matrix, needs, env, job, run, now",
    ),
    # --- env, params, pools ---------------------------------------------------------------
    case(
        "bad env name",
        '[jobs.a]\ncommand = "x"\nenv = { "A B" = "1" }\n',
        f"{F}:3: job 'a': env: 'A B' is not a valid environment variable name (it must "
        "match [A-Za-z_][A-Za-z0-9_]*)",
    ),
    case(
        "reserved env name",
        '[jobs.a]\ncommand = "x"\nenv.JOBD_JOB_ID = "x"\n',
        f"{F}:3: job 'a': env: JOBD_JOB_ID: JOBD_* variables are set by jobd",
    ),
    case(
        "env value a table",
        '[jobs.a]\ncommand = "x"\nenv = { A = { b = 1 } }\n',
        f"{F}:3: job 'a': env: A: expected a string, got a table",
    ),
    case(
        "bad param name",
        '[jobs.a]\ncommand = "x"\nparams = { "1st" = "x" }\n',
        f"{F}:3: job 'a': params: '1st' is not a valid parameter name (it must match "
        "[A-Za-z_][A-Za-z0-9_-]*)",
    ),
    case(
        "unknown pool",
        '[jobs.a]\ncommand = "x"\npool = "dbb"\n',
        f"{F}:3: job 'a': pool: unknown pool 'dbb' (the daemon config defines: db); did you "
        "mean 'db'?",
    ),
    # --- stages ---------------------------------------------------------------------------
    case(
        "stage without an action",
        '[jobs.a]\nstages = [\n  { name = "one", command = "x" },\n  { name = "two" },\n]\n',
        f"{F}:4: job 'a': stages[1]: nothing to run: a stage needs one of command, "
        "entrypoint or script",
    ),
    case(
        "stage names twice",
        '[[jobs.a.stages]]\nname = "build"\ncommand = "x"\n\n'
        '[[jobs.a.stages]]\nname = "build"\ncommand = "y"\n',
        f"{F}:6: job 'a': stages[1].name: 'build' is also the name of stages[0]",
    ),
    case(
        "stage bad timeout",
        '[[jobs.a.stages]]\ncommand = "x"\ntimeout = "soon"\n',
        f"{F}:3: job 'a': stages[0].timeout: 'soon' is not a duration; write a number and a "
        'unit (ms, s, m, h, d, w), e.g. "250ms", "30s", "1h30m"',
    ),
    case(
        "stage unknown key",
        '[jobs.a]\nstages = [{ command = "x", image = "alpine" }]\n',
        f"{F}:2: job 'a': stages[0].image: unknown key",
    ),
    case("stages empty", "[jobs.a]\nstages = []\n", f"{F}:2: job 'a': stages: must not be empty"),
    case(
        "bad expression in a stage",
        '[jobs.a]\nstages = [\n  { command = "x" },\n'
        '  { command = "${{ params. }}", condition = "true" },\n]\n',
        f"{F}:4: job 'a': stages[1].command: unexpected end of expression at column 12 in "
        "'params.'; a property name follows '.'; write a['...'] for other names",
    ),
    # --- matrix ---------------------------------------------------------------------------
    case(
        "matrix dimension empty",
        '[jobs.a]\ncommand = "x"\nmatrix = { py = [] }\n',
        f"{F}:3: job 'a': matrix: py: a dimension needs at least one value",
    ),
    case(
        "matrix dimension not a list",
        '[jobs.a]\ncommand = "x"\n[jobs.a.matrix]\npy = "3.12"\n',
        f"{F}:4: job 'a': matrix: py: expected a list of values, got a string ('3.12')",
    ),
    case(
        "matrix exclude names no dimension",
        '[jobs.a]\ncommand = "x"\nmatrix = { py = ["3.11", "3.12"], exclude = [{ os = "mac" }] }\n',
        f"{F}:3: job 'a': matrix: exclude entry 1 names 'os', which is not a dimension "
        "(dimensions: py)",
    ),
    case(
        "matrix too large",
        f'[jobs.a]\ncommand = "x"\nmatrix = {{ a = {list(range(20))}, b = {list(range(20))} }}\n',
        f"{F}:3: job 'a': matrix: 400 combinations; at most 256 may run (GitHub's limit)",
    ),
    case(
        "include without matrix",
        '[jobs.a]\ncommand = "x"\ninclude = [{ a = 1 }]\n',
        f"{F}:3: job 'a': include: only applies with matrix",
    ),
    case(
        "max_parallel inside matrix",
        '[jobs.a]\ncommand = "x"\nmatrix = { py = ["3.12"], max_parallel = 2 }\n',
        f"{F}:3: job 'a': matrix: max_parallel is a job key, not a matrix dimension: move it "
        "out of matrix",
    ),
    # --- needs ----------------------------------------------------------------------------
    case(
        "needs itself",
        '[jobs.a]\ncommand = "x"\nneeds = ["a"]\n',
        f"{F}:3: job 'a': needs: a job cannot need itself",
    ),
    case(
        "needs an invalid id",
        '[jobs.a]\ncommand = "x"\nneeds = ["no way"]\n',
        f"{F}:3: job 'a': needs: 'no way' is not a valid job id",
    ),
    case(
        "needs an unknown job",
        '[jobs.extract]\ncommand = "x"\n\n[jobs.load]\n'
        'command = "x"\nneeds = [\n  "extract",\n  "extrct",\n]\n',
        f"{F}:8: job 'load': needs: unknown job 'extrct'; did you mean 'extract'?",
    ),
    case(
        "needs cycle in a file",
        '[jobs.a]\ncommand = "x"\nneeds = ["c"]\n[jobs.b]\n'
        'command = "x"\nneeds = ["a"]\n[jobs.c]\ncommand = "x"\nneeds = ["b"]\n',
        f"{F}:3: job 'a': needs: needs cycle: a -> c -> b -> a",
    ),
    Case(
        "needs cycle across files",
        {
            "a.toml": '[jobs.a]\ncommand = "x"\nneeds = ["b"]\n',
            "b.toml": '[jobs.b]\ncommand = "x"\nneeds = ["a"]\n',
            "c.toml": OK,
        },
        (
            "jobs.d/a.toml:3: job 'a': needs: needs cycle: a -> b -> a",
            "jobs.d/b.toml:3: job 'b': needs: needs cycle: a -> b -> a",
        ),
    ),
    Case(
        "duplicate ids across files",
        {"a.toml": OK, "b.toml": '# the same id\n\n[jobs.ok]\ncommand = "false"\n'},
        ("jobs.d/b.toml:3: job 'ok': job id already defined in jobs.d/a.toml:1",),
    ),
    Case(
        "unknown need of a rejected file's job",
        {
            "a.toml": '[jobs.a]\ncommand = "x"\ncron = "bad"\n',
            "b.toml": '[jobs.b]\ncommand = "x"\nneeds = ["a"]\n',
        },
        (
            "jobs.d/a.toml:3: job 'a': cron: 'bad' is not a valid cron expression (1 field; "
            "expected 5 (minute hour day-of-month month day-of-week) or 6 with seconds first)",
            "jobs.d/b.toml:3: job 'b': needs: unknown job 'a'",
        ),
    ),
    # --- hooks and stale_after -------------------------------------------------------------
    case(
        "hook of an unknown job",
        '[jobs.notify]\ncommand = "x"\n\n[jobs.etl]\ncommand = "x"\non_failure = ["notfy"]\n',
        f"{F}:6: job 'etl': on_failure: unknown job 'notfy'; did you mean 'notify'?",
    ),
    Case(
        "hook in another file, unknown",
        {"a.toml": '[jobs.a]\ncommand = "x"\non_success = ["ok", "gone"]\n', "b.toml": OK},
        ("jobs.d/a.toml:3: job 'a': on_success: unknown job 'gone'",),
    ),
    case(
        "own hook",
        '[jobs.a]\ncommand = "x"\non_retry = ["a"]\n',
        f"{F}:3: job 'a': on_retry: a job cannot be its own hook",
    ),
    case(
        "hook named twice",
        '[jobs.a]\ncommand = "x"\non_failure = ["b", "b"]\n[jobs.b]\ncommand = "x"\n',
        f"{F}:3: job 'a': on_failure: 'b' is named twice",
    ),
    case(
        "stale_after not a duration",
        '[jobs.a]\ncommand = "x"\nstale_after = "26"\n',
        f"{F}:3: job 'a': stale_after: '26' is not a duration; write a number and a unit "
        '(ms, s, m, h, d, w), e.g. "250ms", "30s", "1h30m"',
    ),
    case(
        "description not a string",
        '[jobs.a]\ncommand = "x"\ndescription = 1\n',
        f"{F}:3: job 'a': description: expected a string, got an integer (1)",
    ),
    # --- line numbers of other forms ------------------------------------------------------
    case(
        "dotted keys",
        '[jobs]\na.command = "x"\na.retries = true\n',
        f"{F}:3: job 'a': retries: expected an integer, got a boolean (true)",
    ),
    case(
        "inline job table",
        'jobs.a = { command = "x", kill_grace = "1 s" }\n',
        f"{F}:1: job 'a': kill_grace: '1 s' is not a duration; write a number and a unit "
        '(ms, s, m, h, d, w), e.g. "250ms", "30s", "1h30m"',
    ),
    case(
        "several problems, in line order",
        '[jobs.a]\ntimeout = "x"\ncommand = ["echo"]\nretries = 1.5\n',
        f"{F}:2: job 'a': timeout: 'x' is not a duration; write a number and a unit (ms, s, "
        'm, h, d, w), e.g. "250ms", "30s", "1h30m"',
        f"{F}:4: job 'a': retries: expected an integer, got a float (1.5)",
    ),
    # --- [tool.scheduled] -----------------------------------------------------------------
    case(
        "scheduled bad cadence",
        '[tool.scheduled.clean]\nevery = "2 days"\nentrypoint = "app.jobs:clean"\n',
        f"{F}:2: job 't:clean': every: '2 days' is not one of minute, hour, day, week or month; did "
        "you mean 'day'?",
    ),
    case(
        "scheduled missing entrypoint",
        '[project]\nname = "x"\n\n[tool.scheduled.clean]\nevery = "day"\n',
        f"{F}:4: job 'x:clean': missing key entrypoint (the scheduled-jobs spec requires "
        "every and entrypoint)",
    ),
    case(
        "scheduled unknown key",
        '[tool.scheduled.clean]\nevery = "day"\nentrypoint = "app.jobs:clean"\ncron = "@daily"\n',
        f"{F}:4: job 't:clean': cron: unknown key",
    ),
    case(
        "scheduled id with a control character",
        '[tool.scheduled."a\\tb"]\nevery = "day"\nentrypoint = "app.jobs:clean"\n',
        f"{F}:1: 'a\\tb' is not a valid job id: it holds a control character",
    ),
    case(
        "scheduled id empty",
        '[tool.scheduled.""]\nevery = "day"\nentrypoint = "app.jobs:clean"\n',
        f"{F}:1: an empty job id",
    ),
    case(
        "scheduled id too long",
        "[tool.scheduled." + "a" * 260 + ']\nevery = "day"\nentrypoint = "app.jobs:clean"\n',
        f"{F}:1: job id 't:" + "a" * 55 + "...' is longer than 256 characters",
    ),
    case(
        "a [jobs] id cannot take the project:job form",
        '[project]\nname = "x"\n[tool.scheduled.clean]\n'
        'every = "day"\nentrypoint = "app.jobs:clean"\n[tool.scheduled.Clean]\n'
        'every = "day"\nentrypoint = "app.jobs:clean"\n[jobs."x:clean"]\ncommand = "x"\n',
        f"{F}:9: 'x:clean' is not a valid job id: it must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}",
    ),
]


def _materialise(dir_: Path, files: Mapping[str, Content]) -> None:
    for name, content in files.items():
        path = dir_ / name
        if content is DIRECTORY:
            path.mkdir()
        elif content is DANGLING:
            path.symlink_to(dir_ / "missing.toml")
        elif content is FIFO:
            os.mkfifo(path)
        elif content is HUGE:
            path.write_text(OK + "#" * (1024 * 1024) + "\n")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")


def test_there_are_enough_distinct_cases() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 40
    assert (
        len(
            {
                tuple(c.files.items())
                for c in CASES
                if not any(isinstance(v, Special) for v in c.files.values())
            }
        )
        == len(CASES) - 4
    )


@pytest.mark.parametrize("c", CASES, ids=[c.name for c in CASES])
def test_invalid_file(c: Case, config: DaemonConfig, workdir: Path) -> None:
    _materialise(workdir / "jobs.d", c.files)
    jobset = load_jobs(config)
    lines = tuple(line for lines in jobset.invalid.values() for line in lines)
    assert lines == c.expected
    for line in lines:
        assert "\n" not in line and "Traceback" not in line
    rejected = set(jobset.invalid)
    assert all(j.source.file not in rejected for j in jobset.jobs.values())


SUBPROCESS_CASES = ["binary", "nesting beyond the parser", "bad cron", "needs cycle across files"]


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_check_in_a_subprocess(name: str, workdir: Path) -> None:
    c = next(c for c in CASES if c.name == name)
    _materialise(workdir / "jobs.d", c.files)
    proc = subprocess.run(
        [sys.executable, "-m", "jobd.cli.check", "--config", "jobd.toml"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1
    assert tuple(proc.stderr.splitlines()) == c.expected
    assert proc.stdout == ""


def test_integer_with_too_many_digits(
    write_jobs: Callable[[Mapping[str, str]], list[Path]], config: DaemonConfig
) -> None:
    # Python refuses to convert such an integer; that too is only a problem of the file
    write_jobs({"t.toml": '[jobs.a]\ncommand = "x"\npriority = 1' + "0" * 5000 + "\n"})
    (line,) = load_jobs(config).invalid[config.jobs_dir / "t.toml"]
    assert line.startswith(f"{F}: invalid TOML: Exceeds the limit (4300 digits)")
    assert len(line) < 400
