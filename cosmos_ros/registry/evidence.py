"""Evaluation evidence: the schema the approval gate trusts, which is what ``cosmos-ros eval`` attaches.

Why: ``attach-eval`` took any JSON object, so ``{"passed": "false"}`` or ``{"hello": "world"}``
counted as evaluation results and ``approve`` then went through without a force reason. Evidence
attached by hand must now have the shape :func:`cosmos_ros.evaluation.gate.publish_results` writes:

    {"metrics": {METRIC: {"mean", "ci95", "n", ...}}, "dataset_manifest_sha256", "split", "clips",
     "seeds", "base_fingerprint", "code_version",
     "passed": true | false, "gate": {"promote_to", "rules": [...], "checks": [...]}}

``passed`` and ``gate`` come together (an evaluation run without ``--gate`` has neither, and is
context, not a verdict): only an evaluation whose ``passed`` is ``true`` opens the approval gate.
"""

from __future__ import annotations

import json
import math
from typing import Any

from cosmos_ros.registry.records import RegistryError

REQUIRED_FIELDS: tuple[str, ...] = (
    "metrics",
    "dataset_manifest_sha256",
    "split",
    "clips",
    "seeds",
    "base_fingerprint",
    "code_version",
)
OPTIONAL_FIELDS: tuple[str, ...] = ("passed", "gate")
_STAT_NUMBERS = ("mean", "delta_vs_base", "base_mean")
_STAT_PAIRS = ("ci95", "delta_ci95")


class EvidenceError(RegistryError):
    """Evaluation results that do not have the schema the ``eval`` command writes."""


def _number_or_null(value: Any) -> bool:
    if value is None:
        return True
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def _fail(where: str, field: str, value: Any, accepted: str) -> EvidenceError:
    shown = ascii(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return EvidenceError(f"{where}: evaluation field {field!r} = {shown} is not accepted; {accepted}")


def check_evaluation(results: Any, where: str) -> dict[str, Any]:
    """Return ``results`` if it has the ``eval`` command's schema, else raise naming the field."""
    from cosmos_ros.registry.validation import BASE_FINGERPRINT_RE, SHA256_HEX_RE

    if not isinstance(results, dict):
        raise EvidenceError(
            f"{where}: evaluation results must be a JSON object as 'cosmos-ros eval' attaches, "
            f"got {type(results).__name__}"
        )
    unknown = sorted(set(results) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise EvidenceError(
            f"{where}: unknown evaluation field(s) {', '.join(map(repr, unknown))}; accepted: "
            f"{', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)} (the schema 'cosmos-ros eval' writes)"
        )
    if "passed" in results and not isinstance(results["passed"], bool):  # the classic: "false" as text
        raise _fail(where, "passed", results["passed"], "true or false (a JSON boolean, not text)")
    missing = [key for key in REQUIRED_FIELDS if key not in results]
    if missing:
        raise EvidenceError(
            f"{where}: evaluation field(s) {', '.join(map(repr, missing))} missing; the schema "
            f"'cosmos-ros eval' writes has {', '.join(REQUIRED_FIELDS)}"
        )
    try:
        json.dumps(results, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise EvidenceError(f"{where}: evaluation results are not plain JSON ({exc})") from exc
    _check_metrics(results["metrics"], where)
    fingerprint = results["base_fingerprint"]
    if not isinstance(fingerprint, str) or not BASE_FINGERPRINT_RE.match(fingerprint):
        raise _fail(where, "base_fingerprint", fingerprint, "'sha256:' and 64 lowercase hex digits")
    manifest = results["dataset_manifest_sha256"]
    if not isinstance(manifest, str) or not SHA256_HEX_RE.match(manifest):
        raise _fail(where, "dataset_manifest_sha256", manifest, "64 lowercase hex digits")
    for key in ("split", "code_version"):
        if results[key] is not None and not isinstance(results[key], str):
            raise _fail(where, key, results[key], "text or null")
    clips = results["clips"]
    if isinstance(clips, bool) or not isinstance(clips, int) or clips < 1:
        raise _fail(where, "clips", clips, "the number of clips evaluated, an integer >= 1")
    seeds = results["seeds"]
    items = seeds if isinstance(seeds, list) else [seeds]
    if seeds is not None and not all(isinstance(s, int) and not isinstance(s, bool) for s in items):
        raise _fail(where, "seeds", seeds, "the seeds used: an integer, a list of integers or null")
    if ("passed" in results) != ("gate" in results):
        raise EvidenceError(
            f"{where}: evaluation fields 'passed' and 'gate' come together (a gated run) or not at all"
        )
    if "passed" in results:
        _check_gate(results["gate"], results["passed"], where)
    return results


def _check_metrics(metrics: Any, where: str) -> None:
    if not isinstance(metrics, dict) or not metrics:
        raise _fail(where, "metrics", metrics, "a non-empty mapping of metric name to {mean, ci95, n}")
    for name, stats in metrics.items():
        field = f"metrics.{name}"
        if not isinstance(stats, dict) or "mean" not in stats:
            raise _fail(where, field, stats, "a mapping with mean, ci95 and n")
        for key in _STAT_NUMBERS:
            if key in stats and not _number_or_null(stats[key]):
                raise _fail(where, f"{field}.{key}", stats[key], "a finite number or null")
        for key in _STAT_PAIRS:
            pair = stats.get(key)
            if key in stats and (
                not isinstance(pair, list) or len(pair) != 2 or not all(map(_number_or_null, pair))
            ):
                raise _fail(where, f"{field}.{key}", pair, "[low, high], numbers or null")
        count = stats.get("n")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise _fail(where, f"{field}.n", count, "a sample count, an integer >= 0")


def _check_gate(gate: Any, passed: bool, where: str) -> None:
    if not isinstance(gate, dict) or not isinstance(gate.get("rules"), list) or not gate["rules"]:
        raise _fail(where, "gate", gate, "a mapping with the non-empty 'rules' list the gate applied")
    for index, rule in enumerate(gate["rules"]):
        if (
            not isinstance(rule, dict)
            or not isinstance(rule.get("metric"), str)
            or not _number_or_null(rule.get("margin"))
            or rule.get("margin") is None
        ):
            raise _fail(where, f"gate.rules[{index}]", rule, "{metric: text, margin: number, require_ci}")
    checks = gate.get("checks")
    if not isinstance(checks, list) or len(checks) != len(gate["rules"]):
        raise _fail(where, "gate.checks", checks, "one check per gate rule")
    for index, check in enumerate(checks):
        if not isinstance(check, dict) or not isinstance(check.get("passed"), bool):
            raise _fail(where, f"gate.checks[{index}]", check, "a mapping whose 'passed' is true or false")
    if passed != all(check["passed"] for check in checks):
        raise _fail(where, "passed", passed, "'passed' must agree with the gate's checks")


def gate_verdict(results: dict[str, Any]) -> bool | None:
    """``True``/``False`` for a gated evaluation, ``None`` for an ungated (or pre-schema) one."""
    passed = results.get("passed")
    return passed if isinstance(passed, bool) else None
