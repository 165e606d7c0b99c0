"""One set of type rules for config values from YAML and flags (bag converter and trainer)."""

from __future__ import annotations

import pytest

from cosmos_ros.typed_fields import FieldTypeError, coerce


@pytest.mark.parametrize(
    ("type_name", "value", "expected"),
    [
        ("int", 3, 3),
        ("float", 16, 16.0),  # ints widen, so YAML `16` and a flag's 16.0 are one value
        ("float | None", None, None),
        ("str", "crop", "crop"),
        ("bool", False, False),
        ("list[str]", ("to_q", "to_v"), ["to_q", "to_v"]),
        ("list[float]", [1, 0.5], [1.0, 0.5]),
    ],
)
def test_accepted_values(type_name: str, value: object, expected: object) -> None:
    got = coerce(type_name, value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("type_name", "value", "accepted"),
    [
        ("int", "nine", "an integer"),
        ("int", True, "an integer"),  # YAML `yes` is not a count
        ("int", 1.5, "an integer"),
        ("float", True, "a number"),
        ("bool", "yes", "true or false"),
        ("int | None", "x", "an integer or null"),
        ("list[float]", [0.5, "a"], "a list of numbers, e.g. [0.5, 0.5]"),
    ],
)
def test_refused_values_say_what_is_accepted(type_name: str, value: object, accepted: str) -> None:
    with pytest.raises(FieldTypeError) as info:
        coerce(type_name, value)
    assert info.value.accepted == accepted and info.value.value == value
