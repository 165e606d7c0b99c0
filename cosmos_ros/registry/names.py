"""Adapter names and references: what the registry accepts, checked before anything touches disk.

A *name* says which embodiment/task an adapter is for (``ur5e.pick-place``). Names end up in
file names of exported bundles and in ROS parameters, so they are restricted to a portable
alphabet: no path separators, no ``..``, no control characters, no whitespace.

A *reference* (ref) picks one version of a name:

- ``name@3``: exactly version 3;
- ``name@latest``: the newest version, whatever its status;
- ``name@approved`` (or ``@candidate``, ``@draft``, ``@deprecated``): the newest version in that status;
- ``name``: the default version, i.e. the newest approved one where any exists, else the newest
  version that is not revoked (so a node configured with just a name follows approvals).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_NAME_LENGTH = 100
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_NAME_RE = re.compile(rf"^{NAME_PATTERN}\Z")
NAME_RULE = (
    f"a name is 1-{MAX_NAME_LENGTH} characters matching {NAME_PATTERN} "
    "(letters, digits, '.', '_', '-', starting with a letter or digit) and never contains '..'"
)
TAG_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:=-]*"
_TAG_RE = re.compile(rf"^{TAG_PATTERN}\Z")
MAX_TAG_LENGTH = 64
#: The largest version number: far more than any name sees, well inside SQLite's 64-bit integers.
MAX_VERSION = 2**31 - 1
#: Selectors accepted after ``@`` besides a version number.
SELECTORS: tuple[str, ...] = ("latest", "draft", "candidate", "approved", "deprecated")


class InvalidNameError(ValueError):
    """A name, tag or reference that the registry refuses."""


def validate_name(name: str) -> str:
    """Return ``name`` unchanged if acceptable, else raise :class:`InvalidNameError` saying why."""
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"adapter name is empty; {NAME_RULE}")
    shown = ascii(name) if len(name) <= 120 else ascii(name[:120]) + "..."
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"adapter name {shown} is {len(name)} characters long; {NAME_RULE}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidNameError(f"adapter name {shown} contains control characters; {NAME_RULE}")
    if "/" in name or "\\" in name:
        raise InvalidNameError(f"adapter name {shown} contains a path separator; {NAME_RULE}")
    if ".." in name:
        raise InvalidNameError(f"adapter name {shown} contains '..'; {NAME_RULE}")
    if not _NAME_RE.match(name):
        raise InvalidNameError(f"adapter name {shown} is not accepted; {NAME_RULE}")
    return name


def validate_tag(tag: str) -> str:
    """Tags follow the name alphabet plus ``:`` and ``=`` (``site=lab2``)."""
    if not isinstance(tag, str) or not (0 < len(tag) <= MAX_TAG_LENGTH) or not _TAG_RE.match(tag):
        raise InvalidNameError(
            f"tag {tag!a} is not accepted; a tag is 1-{MAX_TAG_LENGTH} characters matching {TAG_PATTERN}"
        )
    return tag


@dataclass(frozen=True)
class AdapterRef:
    """A parsed reference: ``version`` for ``name@3``, ``selector`` for ``name@approved``, else neither."""

    name: str
    version: int | None = None
    selector: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.selector is not None:
            return f"{self.name}@{self.selector}"
        return self.name


def parse_ref(ref: str) -> AdapterRef:
    """Parse ``name``, ``name@3`` or ``name@approved``; refuse anything else with the accepted forms."""
    if not isinstance(ref, str):
        raise InvalidNameError(f"adapter reference must be a string, got {type(ref).__name__}")
    forms = f"accepted: NAME, NAME@VERSION (a positive integer) or NAME@{{{','.join(SELECTORS)}}}"
    name, sep, rest = ref.partition("@")
    validate_name(name)
    if not sep:
        return AdapterRef(name)
    if rest.isascii() and rest.isdigit():
        version = int(rest)
        if not 1 <= version <= MAX_VERSION:
            raise InvalidNameError(
                f"adapter reference {ref!a}: versions run from 1 to {MAX_VERSION}; {forms}"
            )
        return AdapterRef(name, version=version)
    if rest in SELECTORS:
        return AdapterRef(name, selector=rest)
    raise InvalidNameError(f"adapter reference {ref!a} is not understood; {forms}")


def adapter_id(name: str, version: int) -> str:
    """The canonical id of one registered version: ``name@3``."""
    return f"{name}@{version}"
