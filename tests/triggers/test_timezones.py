"""Zone names: resolving them, and finding the machine's zone."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobd.triggers.timezones import machine_timezone, resolve_timezone


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Etc/GMT+5"])
def test_known_names_resolve(name: str) -> None:
    assert resolve_timezone(name).key == name


@pytest.mark.parametrize(
    "name",
    [
        "Mars/Base",
        "",
        " UTC",
        "UTC ",
        "Europe",
        "Europe/",
        "../../etc/passwd",
        "/etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "Europe/Ber\x00lin",
        "Europe\\Berlin",
        "..",
        "zone.tab",
        "\udcff",
        "x" * 5000,
    ],
)
def test_unknown_or_malformed_names_are_a_value_error(name: str) -> None:
    with pytest.raises(ValueError) as info:
        resolve_timezone(name)
    assert type(info.value) is ValueError
    assert str(info.value) == f"unknown timezone '{name}'"


def test_the_message_is_the_contract_one() -> None:
    with pytest.raises(ValueError, match=r"^unknown timezone 'Mars/Base'$"):
        resolve_timezone("Mars/Base")


def _link(tmp_path: Path, target: str) -> Path:
    link = tmp_path / "localtime"
    link.symlink_to(target)
    return link


def test_machine_zone_from_tz(tmp_path: Path) -> None:
    none = tmp_path / "absent"
    assert machine_timezone({"TZ": "Europe/Berlin"}, none, none) == "Europe/Berlin"
    assert machine_timezone({"TZ": ":America/New_York"}, none, none) == "America/New_York"
    assert machine_timezone({"TZ": "/usr/share/zoneinfo/Asia/Tokyo"}, none, none) == "Asia/Tokyo"


def test_machine_zone_from_the_localtime_symlink(tmp_path: Path) -> None:
    none = tmp_path / "absent"
    link = _link(tmp_path, "/usr/share/zoneinfo/Europe/Paris")
    assert machine_timezone({}, link, none) == "Europe/Paris"
    # a POSIX rule in $TZ is not a name: the symlink decides
    assert machine_timezone({"TZ": "CET-1CEST,M3.5.0,M10.5.0/3"}, link, none) == "Europe/Paris"
    (tmp_path / "posix").mkdir()
    posix = _link(tmp_path / "posix", "../zoneinfo/posix/Australia/Lord_Howe")
    assert machine_timezone({}, posix, none) == "Australia/Lord_Howe"


def test_machine_zone_fallbacks(tmp_path: Path) -> None:
    none = tmp_path / "absent"
    tzfile = tmp_path / "timezone"
    tzfile.write_text("America/Chicago\n")
    copied = tmp_path / "copied"
    copied.write_bytes(b"TZif")  # a copied file, not a symlink
    assert machine_timezone({}, copied, tzfile) == "America/Chicago"
    assert machine_timezone({}, none, none) == "UTC"
    bad = _link(tmp_path, "/nowhere/zoneinfo/Mars/Base")
    assert machine_timezone({"TZ": "Mars/Base"}, bad, none) == "UTC"


def test_machine_zone_of_this_machine_resolves() -> None:
    resolve_timezone(machine_timezone())
