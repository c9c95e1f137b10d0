"""Line numbers of keys in TOML text, in every form TOML allows."""

from __future__ import annotations

import tomllib

from jobd.config.locate import locate

TEXT = '''\
# comment [not.a.table]
title = "x"            # line 2

[jobs.load]            # line 4
cron = [               # line 5
  "0 * * * *",         # line 6
  # a comment inside
  '* * * * *',         # line 8
]
"quoted key" = 1       # line 10
env = { A = "1", "B" = 'two' }  # line 11
text = """
multi
line ] } [
"""                    # ends on line 15
after = 1              # line 16
literal = \'\'\'
x\'\'\'                # line 18
when = 1979-05-27 07:32:00Z
next = true            # line 20

[jobs]
load2.command = "x"    # line 23
"a.b".c = 2            # line 24

[[jobs.ci.stages]]     # line 26
name = "one"           # line 27
[[jobs.ci.stages]]     # line 28
name = "two"           # line 29
[jobs.ci.stages.env]   # line 30
X = "1"                # line 31
[jobs.inline]          # line 32
stages = [{ name = "a" },
          { name = "b", env = { Y = "2" } }]  # line 34
nested = [[1, 2], [3, { k = "v" }]]          # line 35
escaped = "a \\" ] # still a string"          # line 36
'''


def test_text_is_valid_toml() -> None:
    tomllib.loads(TEXT)


def test_lines() -> None:
    locs = locate(TEXT)
    expected = {
        ("title",): 2,
        ("jobs",): 4,
        ("jobs", "load"): 4,
        ("jobs", "load", "cron"): 5,
        ("jobs", "load", "cron", 0): 6,
        ("jobs", "load", "cron", 1): 8,
        ("jobs", "load", "quoted key"): 10,
        ("jobs", "load", "env"): 11,
        ("jobs", "load", "env", "A"): 11,
        ("jobs", "load", "env", "B"): 11,
        ("jobs", "load", "text"): 12,
        ("jobs", "load", "after"): 16,
        ("jobs", "load", "literal"): 17,
        ("jobs", "load", "when"): 19,
        ("jobs", "load", "next"): 20,
        ("jobs", "load2"): 23,
        ("jobs", "load2", "command"): 23,
        ("jobs", "a.b", "c"): 24,
        ("jobs", "ci"): 26,
        ("jobs", "ci", "stages"): 26,
        ("jobs", "ci", "stages", 0): 26,
        ("jobs", "ci", "stages", 0, "name"): 27,
        ("jobs", "ci", "stages", 1): 28,
        ("jobs", "ci", "stages", 1, "name"): 29,
        ("jobs", "ci", "stages", 1, "env"): 30,
        ("jobs", "ci", "stages", 1, "env", "X"): 31,
        ("jobs", "inline", "stages", 0, "name"): 33,
        ("jobs", "inline", "stages", 1): 34,
        ("jobs", "inline", "stages", 1, "env", "Y"): 34,
        ("jobs", "inline", "nested", 1, 1, "k"): 35,
        ("jobs", "inline", "escaped"): 36,
    }
    assert {path: locs.line(path) for path in expected} == expected


def test_nearest_falls_back_to_the_table() -> None:
    locs = locate('[jobs.a]\ncommand = "x"\n')
    assert locs.nearest(("jobs", "a", "missing", 3)) == 1
    assert locs.nearest(("jobs", "a", "command", 0)) == 2
    assert locs.nearest(("other",)) is None


def test_keys_with_escapes_match_what_tomllib_reads() -> None:
    text = '[jobs."\\u0061\\tb"]\nx = 1\n'
    (key,) = tomllib.loads(text)["jobs"]
    assert locate(text).line(("jobs", key, "x")) == 2


def test_never_raises_on_garbage() -> None:
    for text in [
        "[",
        "a = ",
        "a = [1, 2",
        "a = {",
        '"unclosed',
        "= 1",
        "[[a]",
        "a = '''",
        "a." * 50,
        "x = " + "[" * 10000,
        "\x00\x01",
        "a = 1 ] b",
    ]:
        locate(text)  # partial results are fine; an exception is not
