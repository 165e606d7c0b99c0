"""Where a clip's prompt comes from: a prompt topic in the bag, a per-bag mapping, or --prompt.

The most specific source wins: a std_msgs/String on ``--prompt-topic`` (the latest one received
before the clip ends), else the bag's entry in ``--prompt-map`` (YAML mapping or CSV with
columns ``bag,prompt``; keys match the bag's path, name or stem), else ``--prompt``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path


class PromptError(ValueError):
    """A prompt source that cannot be used (names the file or bag)."""


def load_prompt_map(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a YAML mapping ``{bag: prompt}`` or a CSV with ``bag`` and ``prompt`` columns."""
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"prompt map not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if rows and not {"bag", "prompt"} <= set(rows[0]):
            raise PromptError(f"{path}: CSV needs columns 'bag' and 'prompt', found {', '.join(rows[0])}")
        return {row["bag"].strip(): row["prompt"].strip() for row in rows}
    import yaml

    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise PromptError(f"{path}: expected a YAML mapping of bag -> prompt text")
    return {str(k): v.strip() for k, v in data.items()}


def match_keys(bag: Path) -> list[str]:
    """The map keys that select ``bag``, most specific first: path as given, resolved path, name, stem."""
    return list(dict.fromkeys((str(bag), str(bag.resolve()), bag.name, bag.stem)))


def prompt_for_bag(mapping: dict[str, str], bag: Path) -> str | None:
    """The mapping's prompt for ``bag`` (matched by path as given, resolved path, name or stem)."""
    for key in match_keys(bag):
        if key in mapping:
            return mapping[key]
    return None


def no_match_message(map_path: str | os.PathLike[str], mapping: dict[str, str], bag: Path) -> str:
    """Why a bag got no prompt from a map that was given: the keys it has and the keys that would match."""
    keys = sorted(mapping)
    shown = ", ".join(repr(k) for k in keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
    return (
        f"no key of --prompt-map {map_path} matched the bag (its keys: {shown or '(none)'}); a key "
        f"matches a bag by its path as given, resolved path, name or stem "
        f"({', '.join(repr(k) for k in match_keys(bag))})"
    )


def compose_prompt(text: str | None, prefix: str) -> str:
    """Prefix + text, with one space between (the recipe's "The robot arm is performing a task. ")."""
    text = (text or "").strip()
    if not text:
        return ""
    return f"{prefix.strip()} {text}".strip() if prefix.strip() else text
