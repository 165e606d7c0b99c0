"""Values from YAML files and command-line flags checked against a dataclass field's declared type.

Why one module: YAML hands over untyped values, so a string where a number belongs must be named
at the field, not surface later as a bare ``TypeError`` or ``int()`` error. The bag converter's
and the trainer's configs both check their fields with :func:`coerce`, so both accept and refuse
the same things.
"""

from __future__ import annotations

from typing import Any

#: Declared field type (as the annotation string reads) -> how its accepted values are described.
TYPE_WORDS: dict[str, str] = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "list[str]": "a list of strings, e.g. [to_q, to_v]",
    "list[float]": "a list of numbers, e.g. [0.5, 0.5]",
}


class FieldTypeError(ValueError):
    """A value of the wrong type; ``accepted`` says what the field takes (for the caller's message)."""

    def __init__(self, value: Any, accepted: str) -> None:
        super().__init__(f"{value!r} is not {accepted}")
        self.value = value
        self.accepted = accepted


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def coerce(type_name: str, value: Any) -> Any:
    """``value`` as a field of ``type_name`` (``"int"``, ``"float | None"``...), else FieldTypeError.

    Integers widen to floats for float fields (``fps: 16`` and ``--fps 16.0`` are the same value);
    booleans are never numbers; lists come back as lists.
    """
    optional = type_name.endswith(" | None")
    base = type_name.removesuffix(" | None")
    if base not in TYPE_WORDS:
        raise TypeError(f"field type {type_name!r} has no check in cosmos_ros.typed_fields")
    if value is None and optional:
        return None
    accepted = TYPE_WORDS[base] + (" or null" if optional else "")
    if base == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if base == "float" and _is_number(value):
        return float(value)
    if base == "str" and isinstance(value, str):
        return value
    if base == "bool" and isinstance(value, bool):
        return value
    if base == "list[str]" and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    if base == "list[float]" and isinstance(value, (list, tuple)) and all(_is_number(v) for v in value):
        return [float(v) for v in value]
    raise FieldTypeError(value, accepted)
