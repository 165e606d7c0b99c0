"""The promotion gate: an adapter moves up in the registry only when it beats the base by margins.

A rule names a metric and a margin in the metric's unit: the adapter's mean paired difference to
the base (per clip, seeds averaged) must be at least the margin *in the better direction* (higher
PSNR, lower Sampson error). ``require_ci`` additionally asks that the 95 % interval of that
difference lies entirely on the better side of zero. Rules come from a YAML file::

    promote_to: candidate        # or approved
    rules:
      - {metric: psnr, margin: 0.5}
      - {metric: temporal_sampson_px, margin: 0.1, require_ci: true}

or from ``--gate METRIC:MARGIN[:ci]`` flags.

Only adapter rows are judged, always against the base: the ``still`` baseline row is context for a
reader (does the base beat "nothing moves"?), never gated, and never published to the registry.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cosmos_ros.evaluation.results import EvalResults
from cosmos_ros.evaluation.stats import metric_spec

PROMOTION_TARGETS = ("candidate", "approved")


@dataclass(frozen=True)
class GateRule:
    metric: str
    margin: float = 0.0
    require_ci: bool = False

    def __post_init__(self) -> None:
        spec = metric_spec(self.metric)  # raises KeyError naming the known metrics
        if spec.source == "real":
            raise ValueError(f"{self.metric} describes the real clips, not a model: it cannot be a gate rule")
        if not math.isfinite(self.margin) or self.margin < 0:
            raise ValueError(f"gate margin for {self.metric} must be a finite number >= 0, got {self.margin}")


@dataclass
class GateConfig:
    rules: list[GateRule] = field(default_factory=list)
    promote_to: str = "candidate"

    def __post_init__(self) -> None:
        if self.promote_to not in PROMOTION_TARGETS:
            raise ValueError(
                f"promote_to must be one of {', '.join(PROMOTION_TARGETS)}, got {self.promote_to!r}"
            )
        if not self.rules:
            raise ValueError("a gate needs at least one rule (metric and margin)")

    def to_dict(self) -> dict[str, Any]:
        return {"promote_to": self.promote_to, "rules": [asdict(r) for r in self.rules]}


def parse_rule(text: str) -> GateRule:
    """``METRIC:MARGIN`` or ``METRIC:MARGIN:ci`` (e.g. ``psnr:0.5``, ``temporal_sampson_px:0.1:ci``)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "ci"):
        raise ValueError(f"gate rule {text!r} is not METRIC:MARGIN or METRIC:MARGIN:ci")
    try:
        margin = float(parts[1])
    except ValueError as exc:
        raise ValueError(f"gate rule {text!r}: margin {parts[1]!r} is not a number") from exc
    return GateRule(parts[0], margin, len(parts) == 3)


def load_gate(path: str | os.PathLike[str]) -> GateConfig:
    """Read a gate YAML file (see the module docstring)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot read gate file {path}: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise ValueError(f"{path}: expected a mapping with a 'rules' list of {{metric, margin, require_ci}}")
    try:
        rules = [GateRule(**rule) for rule in data["rules"]]
    except (TypeError, KeyError) as exc:
        raise ValueError(f"{path}: bad rule: {exc}") from exc
    return GateConfig(rules, data.get("promote_to", "candidate"))


@dataclass
class GateOutcome:
    row: str
    passed: bool
    checks: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "passed": self.passed, "checks": self.checks}


def evaluate_gate(results: EvalResults, row: str, gate: GateConfig) -> GateOutcome:
    """Check every rule for one adapter row; a metric that was not measured fails its rule.

    Raises ValueError for a row that is not an adapter (the base, the still baseline): the gate
    compares adapters with the base, nothing else.
    """
    kind = results.row(row).kind
    if kind != "adapter":
        raise ValueError(f"the gate judges adapter rows only; {row!r} is a {kind} row")
    checks = []
    for rule in gate.rules:
        spec = metric_spec(rule.metric)
        entry = results.summary.get(rule.metric, {}).get(row, {})
        delta = entry.get("delta") or {}
        sign = 1.0 if spec.higher_is_better else -1.0
        improvement = sign * delta.get("mean", math.nan)
        passed = math.isfinite(improvement) and improvement >= rule.margin
        reason = f"improvement {improvement:.4g} {spec.unit} vs margin {rule.margin:g}"
        if not math.isfinite(improvement):
            reason = f"{rule.metric} was not measured for {row} and the base"
        if passed and rule.require_ci:
            bounds = [sign * delta.get("low", math.nan), sign * delta.get("high", math.nan)]
            worst = min(bounds)
            passed = math.isfinite(worst) and worst > 0
            reason += f"; 95% CI of the improvement starts at {worst:.4g} (must be > 0)"
        checks.append(
            {"metric": rule.metric, "margin": rule.margin, "require_ci": rule.require_ci,
             "improvement": improvement if math.isfinite(improvement) else None, "passed": passed,
             "reason": reason}
        )  # fmt: skip
    return GateOutcome(row, all(c["passed"] for c in checks), checks)


def apply_to_registry(
    registry: Any, ref: str, outcome: GateOutcome, gate: GateConfig, *, by: str | None
) -> str:
    """Promote ``ref`` along draft -> candidate -> approved up to ``gate.promote_to`` when it passed.

    Returns the final status. A failed gate changes no status (the failed results are attached by
    the caller, which also blocks a later approval by hand until the adapter passes or is forced).
    """
    record = registry.get(ref)
    status = record.status
    if not outcome.passed:
        return status
    note = "evaluation gate passed: " + "; ".join(f"{c['metric']} {c['reason']}" for c in outcome.checks)
    path = ["candidate"] if gate.promote_to == "candidate" else ["candidate", "approved"]
    for target in path:
        if status == "draft" and target == "candidate":
            status = registry.set_status(ref, "candidate", by=by, note=note).status
        elif status in ("candidate", "deprecated") and target == "approved":
            status = registry.set_status(ref, "approved", by=by, note=note).status
    return status


def publish_results(
    results: EvalResults,
    registry_path: str | os.PathLike[str],
    gate: GateConfig | None = None,
    *,
    by: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Attach each registry adapter's results to its record and, with a gate, promote those that pass.

    Returns ``{adapter_id: {"passed": bool | None, "status": str, "checks": [...]}}``. Adapters
    evaluated from a folder (not from the registry) are skipped.
    """
    from cosmos_ros.evaluation.protocol import registry_summary
    from cosmos_ros.registry import open_registry

    published: dict[str, dict[str, Any]] = {}
    with open_registry(registry_path) as registry:
        for row in results.rows:
            if row.kind != "adapter" or not row.adapter_ref:
                continue
            payload = registry_summary(results, row.name)
            outcome = evaluate_gate(results, row.name, gate) if gate else None
            if outcome is not None:
                payload["passed"] = outcome.passed
                payload["gate"] = {**gate.to_dict(), "checks": outcome.checks}
            registry.attach_evaluation(row.adapter_ref, payload, by=by)
            status = registry.get(row.adapter_ref).status
            if outcome is not None:
                status = apply_to_registry(registry, row.adapter_ref, outcome, gate, by=by)
            published[row.adapter_ref] = {
                "passed": outcome.passed if outcome else None,
                "status": status,
                "checks": outcome.checks if outcome else [],
            }
    return published
