"""Names and references: what the registry accepts and how refusals are worded."""

from __future__ import annotations

import pytest

from cosmos_ros.registry.names import InvalidNameError, parse_ref, validate_name, validate_tag


@pytest.mark.parametrize("name", ["ur5e.pick-place", "go2_walk", "A1", "x" * 100, "spot.v2.door"])
def test_accepted_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("ur5e/pick", "path separator"),
        ("ur5e\\pick", "path separator"),
        ("..", "'..'"),
        ("a..b", "'..'"),
        ("pick\x00", "control"),
        ("pick\nplace", "control"),
        ("x" * 101, "101 characters"),
        (".hidden", "not accepted"),
        ("-flag", "not accepted"),
        ("has space", "not accepted"),
        ("ümlaut", "not accepted"),
    ],
)
def test_refused_names_say_why_and_what_is_accepted(name: str, why: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        validate_name(name)
    assert why in str(info.value)
    assert "[A-Za-z0-9][A-Za-z0-9._-]*" in str(info.value)


def test_refs_parse_versions_and_selectors() -> None:
    assert parse_ref("ur5e.pick") == parse_ref("ur5e.pick")
    assert parse_ref("ur5e.pick").version is None and parse_ref("ur5e.pick").selector is None
    assert parse_ref("ur5e.pick@3").version == 3
    assert parse_ref("ur5e.pick@approved").selector == "approved"
    assert parse_ref("ur5e.pick@latest").selector == "latest"
    assert str(parse_ref("ur5e.pick@12")) == "ur5e.pick@12"


@pytest.mark.parametrize("ref", ["pick@0", "pick@-1", "pick@best", "pick@", "../x@1", "pick@1@2", "pick@³"])
def test_bad_refs_are_refused_with_the_accepted_forms(ref: str) -> None:
    with pytest.raises(InvalidNameError):
        parse_ref(ref)


def test_tags() -> None:
    assert validate_tag("site=lab2") == "site=lab2"
    for bad in ("", "a/b", "x" * 65, "tab\t"):
        with pytest.raises(InvalidNameError):
            validate_tag(bad)
