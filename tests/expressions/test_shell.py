"""Shell-string commands: values reach /bin/sh as variables, never as script text."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobd._exceptions import ExpressionError
from jobd.expressions import parse_template
from jobd.expressions.shell import shell_command

# shell text around the expressions: quotes, substitutions, here-documents, comments
FRAGMENTS = [
    "echo ",
    " ",
    "'",
    '"',
    "$(",
    ")",
    "`",
    "${A:-",
    "}",
    "# c\n",
    "\n",
    ";",
    "cat <<EOF\n",
    "\nEOF\n",
    "x=",
    "a",
    "|",
    "\\\\",
    "&&",
]
values = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)


def _shell(script: str, env: dict[str, str]) -> str:
    out = subprocess.run(
        ["/bin/sh", "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        timeout=10,
        check=False,
    )
    return out.stdout.decode("utf-8", "surrogateescape")


@settings(max_examples=300, deadline=None)
@given(pieces=st.lists(st.sampled_from(FRAGMENTS) | st.just(None), max_size=12), value=values)
def test_no_value_ever_appears_in_the_script(pieces: list[str | None], value: str) -> None:
    """Whatever the text around them, the values go to the environment; the script holds
    only the template's own text and variable references."""
    marked = f"\u2063{value}\u2064"  # characters no fragment holds
    text = "".join("${{ params.v }}" if p is None else p for p in pieces)
    try:
        cmd = shell_command(parse_template(text))
    except ExpressionError:
        return  # refused where no reference can carry a value (load time)
    script, env = cmd.render({"params": {"v": marked}})
    assert marked not in script
    assert "\u2063" not in script
    assert all(v == marked for v in env.values())
    assert len(env) == pieces.count(None)


@settings(max_examples=60, deadline=None)
@given(value=values)
def test_the_shell_sees_each_value_as_one_word_of_data(value: str) -> None:
    text = (
        "printf '[%s]' ${{ params.v }} '${{ params.v }}' \"${{ params.v }}\" "
        'x${{ params.v }}y "$(printf %s ${{ params.v }})"; cat <<EOF\n${{ params.v }}\nEOF\n'
    )
    script, env = shell_command(parse_template(text)).render({"params": {"v": value}})
    got = _shell(script, env)
    inner = value.rstrip("\n")  # $( ) drops trailing newlines, as it would with any text
    assert got == f"[{value}][{value}][{value}][x{value}y][{inner}]{value}\n"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("echo $(( ${{ params.n }} + 1 ))", r"inside '\$\(\( \)\)'"),
        ("cat <<'EOF'\n${{ params.v }}\nEOF", "quoted here-document"),
        ('cat <<"EOF"\n${{ params.v }}\nEOF', "quoted here-document"),
        ("echo \\${{ params.v }}", "right after a backslash"),
    ],
)
def test_places_no_variable_can_reach_are_refused(text: str, why: str) -> None:
    with pytest.raises(ExpressionError, match=why):
        shell_command(parse_template(text))


def test_the_script_as_written_by_hand() -> None:
    cases = {
        "echo ${{ params.v }}": 'echo "${JOBD_EXPR_1}"',
        "echo '${{ params.v }}'": "echo ''\"${JOBD_EXPR_1}\"''",
        'echo "a ${{ params.v }} b"': 'echo "a ${JOBD_EXPR_1} b"',
        "cat <<EOF\n${{ params.v }}\nEOF\necho ${{ params.w }}": 'cat <<EOF\n${JOBD_EXPR_1}\nEOF\necho "${JOBD_EXPR_2}"',
        "echo 1 # ${{ params.v }}\necho ${{ params.w }}": 'echo 1 # ${JOBD_EXPR_1}\necho "${JOBD_EXPR_2}"',
        "echo plain": "echo plain",
    }
    for text, script in cases.items():
        assert shell_command(parse_template(text)).script == script, text


def test_a_nul_in_a_value_fails_clearly() -> None:
    cmd = shell_command(parse_template("echo ${{ params.v }}"))
    with pytest.raises(ExpressionError, match="NUL"):
        cmd.render({"params": {"v": "a\x00b"}})


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.sampled_from("${}()'\"`\\#<-\n EOFx;|"), max_size=60))
def test_any_text_either_renders_or_is_refused(text: str) -> None:
    """No shell text makes the scanner fail with anything but a clear ``ExpressionError``."""
    text += "${{ params.v }}"
    with contextlib.suppress(ExpressionError):
        shell_command(parse_template(text)).render({"params": {"v": "v"}})


def test_an_empty_expression_is_nothing_and_an_empty_value_an_empty_word() -> None:
    cmd = shell_command(parse_template("printf '[%s]' a ${{ }} b ${{ params.v }} c"))
    script, env = cmd.render({"params": {"v": ""}})
    assert script == "printf '[%s]' a  b \"${JOBD_EXPR_1}\" c"
    assert _shell(script, env) == "[a][b][][c]"
