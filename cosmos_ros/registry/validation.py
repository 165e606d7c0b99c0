"""One validation path for every record, whether it comes from ``register``, ``import`` or training.

Why: imports used to store what ``register`` refused (``training_config: "notadict"``, ``metrics:
[1]``, rank -5, version 2**70, a base fingerprint that is not one). Every field a record keeps is
checked here, and every refusal is one line naming the field and value and what is accepted.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from cosmos_ros.registry.names import MAX_VERSION
from cosmos_ros.registry.records import RegistryError

#: What ``cosmos_ros.model.fingerprint`` writes: ``sha256:`` and 64 lowercase hex digits.
BASE_FINGERPRINT_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
SHA256_HEX_RE = re.compile(r"^[0-9a-f]{64}\Z")
MAX_RANK = 65_536
MAX_TEXT = 10_000
ADAPTER_TYPES = ("lora", "dora")


class InvalidRecordError(RegistryError):
    """A record field (from register, an import or a training run) that is not acceptable."""


def _shown(value: Any) -> str:
    text = ascii(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(where: str, field: str, value: Any, accepted: str) -> InvalidRecordError:
    return InvalidRecordError(f"{where}: {field} {_shown(value)} is not accepted; {accepted}")


def check_version(value: Any, where: str, field: str = "version") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise _fail(where, field, value, f"a version is an integer from 1 to {MAX_VERSION}")
    return value


def check_rank(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RANK:
        raise _fail(where, "rank", value, f"a rank is an integer from 1 to {MAX_RANK}")
    return value


def check_alpha(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(where, "alpha", value, "alpha is a finite number")
    return float(value)


def check_base_fingerprint(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not BASE_FINGERPRINT_RE.match(value):
        raise _fail(
            where, "base_fingerprint", value, "a base fingerprint is 'sha256:' and 64 lowercase hex digits"
        )
    return value


def check_sha256(value: Any, where: str, field: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not SHA256_HEX_RE.match(value):
        raise _fail(where, field, value, f"{field} is 64 lowercase hex digits")
    return value


def check_text(value: Any, where: str, field: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _fail(where, field, value, f"{field} is text of at most {MAX_TEXT} characters")
    return value


def check_mapping(value: Any, where: str, field: str) -> dict[str, Any]:
    """A JSON object (string keys, plain JSON values, no NaN): what training_config and metadata are."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(where, field, value, f"{field} must be a mapping (JSON object)")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _fail(where, field, value, f"{field} must hold plain JSON values ({exc})") from exc
    if not all(isinstance(key, str) for key in value):
        raise _fail(where, field, value, f"{field} keys must be text")
    return dict(value)


def check_metrics(value: Any, where: str, field: str = "metrics") -> dict[str, float | int | None]:
    """Training metrics: names to numbers (``null``: not computed; a mapping: a group of them)."""
    metrics = check_mapping(value, where, field)
    for key, number in metrics.items():
        if isinstance(number, dict):
            check_metrics(number, where, f"{field}.{key}")
        elif number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
            raise _fail(where, f"{field}.{key}", number, f"{field} maps names to numbers")
    return metrics


def check_string_list(value: Any, where: str, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise _fail(where, field, value, f"{field} is a list of non-empty text items")
    return list(value)


def check_adapter_type(value: Any, where: str) -> str | None:
    if value is not None and value not in ADAPTER_TYPES:
        raise _fail(where, "adapter_type", value, f"accepted: {', '.join(ADAPTER_TYPES)}")
    return value


def check_parent_ref(value: Any, where: str) -> str | None:
    """A recorded parent is an adapter id, ``name@version`` (that it exists here is the store's check)."""
    if value is None:
        return None
    from cosmos_ros.registry.names import InvalidNameError, parse_ref

    accepted = "a parent is a registered adapter, NAME@VERSION"
    if not isinstance(value, str):
        raise _fail(where, "parent", value, accepted)
    try:
        parsed = parse_ref(value)
    except InvalidNameError as exc:
        raise _fail(where, "parent", value, accepted) from exc
    if parsed.version is None:
        raise _fail(where, "parent", value, accepted)
    check_version(parsed.version, where, "parent version")
    return value


def check_metadata_file(folder: Path) -> None:
    """Refuse an ``adapter_metadata.json`` that is not a JSON object, before anything reads its fields."""
    from cosmos_ros.model.adapter_folder import METADATA_NAME

    path = folder / METADATA_NAME
    if not folder.is_dir() or not path.is_file():
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRecordError(f"{path}: not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _fail(str(path), "metadata", data, "adapter metadata must be a mapping (JSON object)")


def check_registration_fields(fields: dict[str, Any], where: str) -> dict[str, Any]:
    """The metadata fields of a registration (adapter_metadata.json and overrides), normalised."""
    out = dict(fields)
    out["adapter_type"] = check_adapter_type(fields.get("adapter_type"), where)
    out["rank"] = check_rank(fields.get("rank"), where)
    out["alpha"] = check_alpha(fields.get("alpha"), where)
    out["target_modules"] = check_string_list(fields.get("target_modules"), where, "target_modules")
    out["base_fingerprint"] = check_base_fingerprint(fields.get("base_fingerprint"), where)
    out["dataset_manifest_sha256"] = check_sha256(
        fields.get("dataset_manifest_sha256"), where, "dataset_manifest_sha256"
    )
    out["dataset_path"] = check_text(fields.get("dataset_path"), where, "dataset_path")
    out["training_config"] = check_mapping(fields.get("training_config"), where, "training_config")
    out["code_version"] = check_text(fields.get("code_version"), where, "code_version")
    out["metrics"] = check_metrics(fields.get("metrics"), where)
    return out


def check_record(record: Any, where: str) -> None:
    """Every field of an :class:`AdapterRecord` (an imported one above all) within what is accepted."""
    from cosmos_ros.registry.names import InvalidNameError, validate_name, validate_tag
    from cosmos_ros.registry.records import STATUSES

    try:
        validate_name(record.name)
        for tag in record.tags if isinstance(record.tags, list) else [record.tags]:
            validate_tag(tag)
    except InvalidNameError as exc:
        raise InvalidRecordError(f"{where}: {exc}") from exc
    check_version(record.version, where)
    check_sha256(record.artifact_sha256, where, "artifact_sha256", optional=False)
    size = record.artifact_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _fail(where, "artifact_size", size, "artifact_size is a byte count (integer >= 0)")
    count = record.tensor_count
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise _fail(where, "tensor_count", count, "tensor_count is an integer >= 0")
    if record.status not in STATUSES:
        raise _fail(where, "status", record.status, f"statuses: {', '.join(STATUSES)}")
    check_registration_fields({key: getattr(record, key) for key in REGISTRATION_FIELDS}, where)
    check_parent_ref(record.parent, where)
    for field in ("created_by", "created_at", "note"):
        check_text(getattr(record, field), where, field, optional=field == "note")
    for index, change in enumerate(record.history):
        label = f"history[{index}]"
        if change.to_status not in STATUSES or change.from_status not in (None, *STATUSES):
            raise _fail(where, f"{label}.to_status", change.to_status, f"statuses: {', '.join(STATUSES)}")
        for field in ("by", "at", "note", "force_reason"):
            optional = field in ("note", "force_reason")
            check_text(getattr(change, field), where, f"{label}.{field}", optional=optional)
    for index, entry in enumerate(record.evaluations):
        check_mapping(entry.results, where, f"evaluations[{index}].results")
        for field in ("by", "at"):
            check_text(getattr(entry, field), where, f"evaluations[{index}].{field}", optional=False)


#: Fields of adapter_metadata.json (and CLI overrides) that a record takes over; each is checked
#: by :func:`check_registration_fields`.
REGISTRATION_FIELDS: tuple[str, ...] = (
    "adapter_type",
    "rank",
    "alpha",
    "target_modules",
    "base_fingerprint",
    "dataset_manifest_sha256",
    "dataset_path",
    "training_config",
    "code_version",
    "metrics",
)
