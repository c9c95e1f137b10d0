"""Parsing cron expressions: what is accepted, the messages for what is not, and the wall-clock
matching against croniter's (Vixie day rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from jobd._enums import TriggerKind
from jobd.triggers.cron import ALIASES, CronTrigger


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("61 * * * *", "minute 61 > 59"),
        ("* 24 * * *", "hour 24 > 23"),
        ("0 0 0 * *", "day-of-month 0 < 1"),
        ("0 0 32 * *", "day-of-month 32 > 31"),
        ("0 0 * 13 *", "month 13 > 12"),
        ("0 0 * 0 *", "month 0 < 1"),
        ("0 0 * * 8", "day-of-week 8 > 7"),
        ("60 * * * * *", "second 60 > 59"),
        ("1-70 * * * *", "minute 70 > 59"),
        (
            "* * * *",
            "4 fields; expected 5 (minute hour day-of-month month day-of-week) "
            "or 6 with seconds first",
        ),
        ("* * * * * * *", "7 fields; expected 5"),
        ("*", "1 field; expected 5"),
        ("", "it is empty"),
        ("x * * * *", "minute 'x' is not a number"),
        ("-5 * * * *", "minute '-5' is not a number or a range"),
        ("1-2-3 * * * *", "minute '1-2-3' is not a number or a range"),
        ("0 0 * jna *", "month 'jna' is not a number or a name jan-dec"),
        ("0 0 * * mon-frii", "day-of-week 'frii' is not a number or a name sun-sat"),
        ("*/0 * * * *", "minute step 0 must be at least 1"),
        ("*/x * * * *", "minute step 'x' is not a number"),
        (
            "*/90 * * * *",
            "minute step 90 is too large for minutes 0-59, it would only match 0; "
            'for a run every 90m use every = "90m"',
        ),
        ("0 */24 * * *", "hour step 24 is too large"),
        ("5-1 * * * *", "minute range 5-1 is backwards"),
        ("1,,2 * * * *", "empty item in the minute list '1,,2'"),
        ("? * * * *", "'?' is only allowed for day-of-month and day-of-week, not minute"),
        ("@fortnightly", "unknown alias @fortnightly; use one of @yearly"),
        ("@reboot", "unknown alias @reboot"),
        ("0 0 30 2 *", "it never matches: there is no day 30 in February"),
        ("0 0 31 4,6,9,11 *", "it never matches: there is no day 31 in April, June, September"),
        ("0 0 ² * *", "day-of-month '²' is not a number"),
    ],
)
def test_invalid_expressions_say_why(expression: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        CronTrigger.parse(expression, "UTC")
    message = str(info.value)
    assert message.startswith(f"'{expression}' is not a valid cron expression (")
    assert reason in message


def test_the_contract_example_word_for_word() -> None:
    with pytest.raises(ValueError) as info:
        CronTrigger.parse("61 * * * *", "UTC")
    assert str(info.value) == "'61 * * * *' is not a valid cron expression (minute 61 > 59)"


def test_the_first_bad_field_is_named() -> None:
    with pytest.raises(ValueError, match=r"\(minute 99 > 59\)$"):
        CronTrigger.parse("99 99 99 99 99", "UTC")


def test_unknown_timezone() -> None:
    with pytest.raises(ValueError) as info:
        CronTrigger.parse("* * * * *", "Mars/Base")
    assert str(info.value) == "unknown timezone 'Mars/Base'"


@pytest.mark.parametrize(
    "expression",
    [
        "0 0 29 2 *",  # leap days only
        "0 0 29 2 1",  # both days restricted: Feb 29 or any Monday
        "0 0 * * 7",  # 7 is Sunday
        "0 9-17/2 * * mon-fri",
        "0 0 1 jan,JUL *",
        "15/20 * * * *",  # from 15, every 20: 15, 35, 55
        "0 0 ? * 1",
        "0 0 12 * * ?",  # Quartz-style 6 fields with seconds first
        "  0   12  * * *  ",
        "\t*/5\t*\t*\t*\t*",
    ],
)
def test_valid_expressions(expression: str) -> None:
    t = CronTrigger.parse(expression, "Europe/Berlin")
    assert t.expression == " ".join(expression.split())
    assert t.kind is TriggerKind.CRON
    assert t.next_after(datetime(2025, 1, 1, tzinfo=UTC)) is not None


def test_describe_equality_and_hash() -> None:
    t = CronTrigger.parse("*/5  * * * *", "Europe/Berlin")
    assert t.describe() == "cron '*/5 * * * *' (Europe/Berlin)"
    assert t == CronTrigger.parse("*/5 * * * *", "Europe/Berlin")
    assert hash(t) == hash(CronTrigger.parse("*/5 * * * *", "Europe/Berlin"))
    assert t != CronTrigger.parse("*/5 * * * *", "UTC")
    assert "Europe/Berlin" in repr(t)


@pytest.mark.parametrize(("alias", "expression"), sorted(ALIASES.items()))
def test_aliases_mean_their_expression(alias: str, expression: str) -> None:
    a, b = CronTrigger.parse(alias, "Europe/Berlin"), CronTrigger.parse(expression, "Europe/Berlin")
    at = datetime(2025, 1, 1, tzinfo=UTC)
    for _ in range(30):
        na, nb = a.next_after(at), b.next_after(at)
        assert na == nb and na is not None
        at = na
    assert a.describe() == f"cron '{alias}' (Europe/Berlin)"


def test_steps_and_day_rules_pinned() -> None:
    def times(expression: str, n: int) -> list[str]:
        t = CronTrigger.parse(expression, "UTC")
        at, out = datetime(2025, 1, 1, tzinfo=UTC), []
        for _ in range(n):
            nxt = t.next_after(at)
            assert nxt is not None
            out.append(nxt.strftime("%a %d %H:%M"))
            at = nxt
        return out

    assert times("15/20 0 * * *", 3) == ["Wed 01 00:15", "Wed 01 00:35", "Wed 01 00:55"]
    # both day fields restricted: either (Vixie cron)
    assert times("0 0 1,15 * 1", 4) == [
        "Mon 06 00:00",
        "Mon 13 00:00",
        "Wed 15 00:00",
        "Mon 20 00:00",
    ]
    # a day field starting with '*' applies together with the other
    assert times("0 0 */2 * 1", 3) == ["Mon 13 00:00", "Mon 27 00:00", "Mon 03 00:00"]


_MINUTE = st.sampled_from(["*", "*/5", "*/7", "0", "30", "0,30", "10-20", "10-40/15", "59"])
_HOUR = st.sampled_from(["*", "*/3", "0", "2", "23", "9-17", "1,13", "22-23"])
_DOM = st.sampled_from(["*", "*/2", "1", "15", "28-31", "29", "31", "1,15", "10-20/5"])
_MONTH = st.sampled_from(["*", "*/4", "2", "1,7", "feb", "3-5", "12"])
_DOW = st.sampled_from(["*", "*/2", "0", "1-5", "6,0", "mon", "7", "sat"])


@settings(max_examples=80, deadline=None)
@given(
    st.tuples(_MINUTE, _HOUR, _DOM, _MONTH, _DOW),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
)
def test_utc_matches_croniter(fields: tuple[str, ...], start: datetime) -> None:
    expression = " ".join(fields)
    try:
        trigger = CronTrigger.parse(expression, "UTC")
    except ValueError as exc:
        assert "never matches" in str(exc)
        return
    it = croniter(expression, start, implement_cron_bug=True)
    at = start.replace(tzinfo=UTC)
    for _ in range(8):
        want = it.get_next(datetime).replace(tzinfo=UTC)
        got = trigger.next_after(at)
        assert got == want, (expression, at)
        at = got


@settings(max_examples=60, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)))
def test_six_fields_match_croniter(start: datetime) -> None:
    expression = "*/13 7-9 */5 * * *"
    trigger = CronTrigger.parse(expression, "UTC")
    it = croniter(expression, start, second_at_beginning=True)
    at = start.replace(tzinfo=UTC)
    for _ in range(10):
        want = it.get_next(datetime).replace(tzinfo=UTC)
        got = trigger.next_after(at)
        assert got == want
        at = got
    assert trigger.next_after(at - timedelta(microseconds=1)) == at
