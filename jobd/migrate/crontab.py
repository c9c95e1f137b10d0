"""A crontab (crontab(5)) as jobd jobs. Pure: text in, jobs and notes out.

- ``m h dom mon dow command`` becomes ``cron = "m h dom mon dow"`` and ``command = "..."`` (a
  shell string: cron runs commands with ``/bin/sh -c`` too); ``@daily`` and friends are kept,
  ``@midnight`` and ``@annually`` become ``@daily`` and ``@yearly``.
- The comment lines right above an entry become its ``description``.
- ``NAME=value`` lines apply to the entries after them, as ``env``; ``CRON_TZ``/``TZ`` become
  ``timezone``; ``MAILTO``, ``MAILFROM`` and ``SHELL`` cannot be carried over (noted).
- In a command, ``\\%`` is a plain ``%``; an unescaped ``%`` ends the command and the rest,
  with each ``%`` read as a newline, is its standard input: carried over as a here-document.
- ``@reboot`` has no equivalent (jobd has no "at start" trigger): noted, not imported.
- ``system=True`` reads the user field of /etc/crontab and /etc/cron.d files as ``user``.
"""

from __future__ import annotations

import re

from jobd.migrate._emit import Converted, Result, job_id_for

ALIASES = {
    "@yearly": "@yearly",
    "@annually": "@yearly",
    "@monthly": "@monthly",
    "@weekly": "@weekly",
    "@daily": "@daily",
    "@midnight": "@daily",
    "@hourly": "@hourly",
}
_ENV = re.compile(r"""^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$""")
_NAMES = frozenset(
    {
        "jan",
        "feb",
        "mar",
        "apr",
        "may",
        "jun",
        "jul",
        "aug",
        "sep",
        "oct",
        "nov",
        "dec",
        "sun",
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
    }
)
_HEREDOC = "JOBD_CRON_STDIN"


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def split_percent(command: str) -> tuple[str, str | None]:
    """cron's ``%``: the command (with ``\\%`` made ``%``) and its standard input, if any."""
    out: list[str] = []
    i = 0
    while i < len(command):
        c = command[i]
        if c == "\\" and command[i + 1 : i + 2] == "%":
            out.append("%")
            i += 2
            continue
        if c == "%":
            return "".join(out), command[i + 1 :].replace("\\%", "\0").replace("%", "\n").replace(
                "\0", "%"
            )
        out.append(c)
        i += 1
    return "".join(out), None


def _looks_like_entry(text: str) -> bool:
    """A commented-out crontab entry (``# 0 2 * * * backup``), not prose."""
    words = text.split()
    if (words and words[0] in ALIASES) or words[:1] == ["@reboot"]:
        return True
    return len(words) >= 6 and all(_cron_field(w) for w in words[:5])


def _cron_field(word: str) -> bool:
    parts = re.split(r"[,/-]", word.lower())
    return all(p in ("*", "?") or p.isdigit() or p in _NAMES for p in parts)


def convert(text: str, *, system: bool = False) -> Result:
    """The jobs of a crontab, and notes on what did not carry over."""
    result = Result()
    env: dict[str, str] = {}
    timezone: str | None = None
    comments: list[str] = []
    taken: set[str] = set()
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            comments = []
            continue
        if line.startswith("#"):
            body = line.lstrip("#").strip()
            if _looks_like_entry(body):
                result.note(n, f"commented-out entry not imported: {body}")
                comments = []
            elif body:
                comments.append(body)
            continue
        m = _ENV.match(line)
        if m and not line.startswith("@") and not line.split()[0][0].isdigit():
            name, value = m.group(1), _unquote(m.group(2))
            if name in ("CRON_TZ", "TZ"):
                timezone = value or None
            elif name == "MAILTO":
                result.note(
                    n,
                    f"MAILTO={value}: cron mailed each job's output; jobd keeps it "
                    "in the run's log (jobctl logs). To be told of failures, add "
                    'on_failure = ["notify"] with a notifier job (config/examples/'
                    "notify.sh)",
                )
            elif name in ("MAILFROM", "CONTENT_TYPE", "CONTENT_TRANSFER_ENCODING"):
                result.note(n, f"{name}: mail settings do not apply to jobd")
            elif name == "SHELL":
                if value not in ("/bin/sh", "sh"):
                    result.note(
                        n,
                        f"SHELL={value}: jobd runs string commands with /bin/sh; "
                        'wrap a command as ["' + value + '", "-c", "..."] '
                        "where it needs that shell",
                    )
            else:
                env[name] = value
                result.note(n, f"{name}: carried over as env of the entries after it")
            comments = []
            continue
        _entry(result, n, line, comments, env, timezone, taken, system)
        comments = []
    return result


def _entry(
    result: Result,
    n: int,
    line: str,
    comments: list[str],
    env: dict[str, str],
    timezone: str | None,
    taken: set[str],
    system: bool,
) -> None:
    words = line.split(None, 1 if line.startswith("@") else 5)
    need = 2 if line.startswith("@") else 6
    if system:
        words = line.split(None, need)
        need += 1
    if len(words) < need:
        result.note(n, f"not a crontab entry (too few fields): {line}")
        return
    if line.startswith("@"):
        schedule, rest = words[0], words[1:]
        if schedule == "@reboot":
            result.note(
                n,
                f"@reboot has no jobd equivalent (no trigger at start); not "
                f"imported: {' '.join(rest)}",
            )
            return
        if schedule not in ALIASES:
            result.note(n, f"unknown schedule {schedule}; not imported")
            return
        cron = ALIASES[schedule]
    else:
        cron, rest = " ".join(words[:5]), words[5:]
    user = rest[0] if system else None
    command, stdin = split_percent(rest[-1])
    keys: dict[str, object] = {}
    if comments:
        keys["description"] = " ".join(comments)
    keys["cron"] = cron
    job_id = job_id_for(command, taken, f"cron-{n}")
    if stdin is not None:
        result.note(
            n,
            "'%' in the command: cron sends the text after it to the command's "
            "standard input; carried over as a here-document",
        )
        # A group, so the whole command line reads it, as under cron (a pipeline's first).
        command = f"{{ {command.strip()}\n}} <<'{_HEREDOC}'\n{stdin}\n{_HEREDOC}"
    if "${{" in command:
        result.note(n, "the command holds '${{', which jobd reads as an expression; check it")
    keys["command"] = command
    if timezone:
        keys["timezone"] = timezone
    if user:
        keys["user"] = user
    if env:
        keys["env"] = dict(env)
    result.jobs.append(Converted(job_id=job_id, keys=keys, origin=f"line {n}: {line}"))
