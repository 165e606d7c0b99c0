"""The metrics.json contract: the ONE module that reads and writes evaluation results.

metrics.json holds every number an evaluation produced, with what is needed to reproduce and trust
it: the exact settings, the base model and adapter fingerprints, the dataset manifest hash and the
code version. Rows are the base model (always present, the reference), the ``still`` baseline (the
last conditioning frame repeated: one record per clip, seed 0; absent from files written before it
existed) and each adapter; each generated video is one :class:`SampleRecord` (row x clip x seed); the
real clips get the same
temporal and geometric statistics in :class:`RealRecord` so generated videos can be compared with
them; multi-camera clip groups add :class:`CrossViewRecord` entries.

JSON has no infinity or NaN, and PSNR of identical frames is infinite while an unmeasurable
Sampson error is NaN: inside metric values they are written as the strings ``"Infinity"``,
``"-Infinity"`` and ``"NaN"`` and read back as floats. The file itself is strict JSON.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from cosmos_ros.atomic import atomic_write_text

SCHEMA = "cosmos_ros.eval_metrics/1"
METRICS_NAME = "metrics.json"
#: Name of the reference row: the base model without an adapter.
BASE_ROW = "base"
#: Pseudo-row of statistics measured on the real clips.
REAL_ROW = "real"
#: Baseline row: the last conditioning frame repeated (no model; what "no motion predicted" scores).
STILL_ROW = "still"
#: Row kinds: the reference model, a model-free baseline (never gated or published), an adapter.
ROW_KINDS = ("base", "baseline", "adapter")
#: Row names an adapter cannot take (the summary keys its rows by name).
RESERVED_ROWS = (BASE_ROW, STILL_ROW, REAL_ROW)

_NONFINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


class ResultsFormatError(ValueError):
    """A metrics.json that breaks the contract (names the file and field at fault)."""


def encode_number(value: float | int | None) -> float | int | str | None:
    if value is None or isinstance(value, int):
        return value
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_number(value: Any, where: str) -> float:
    if isinstance(value, str):
        if value not in _NONFINITE:
            raise ResultsFormatError(f"{where}: {value!r} is not a number (or Infinity/-Infinity/NaN)")
        return _NONFINITE[value]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsFormatError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _encode_metrics(values: dict[str, float]) -> dict[str, Any]:
    return {key: encode_number(val) for key, val in sorted(values.items())}


def _decode_metrics(values: Any, where: str) -> dict[str, float]:
    if not isinstance(values, dict):
        raise ResultsFormatError(f"{where}: expected an object of metric values")
    return {key: decode_number(val, f"{where}.{key}") for key, val in values.items()}


def _encode_series(series: dict[str, list[float]]) -> dict[str, list[Any]]:
    return {key: [encode_number(v) for v in vals] for key, vals in sorted(series.items())}


def _decode_series(series: Any, where: str) -> dict[str, list[float]]:
    if not isinstance(series, dict):
        raise ResultsFormatError(f"{where}: expected an object of value lists")
    return {
        key: [decode_number(v, f"{where}.{key}[{i}]") for i, v in enumerate(vals)]
        for key, vals in series.items()
    }


@dataclass
class RowInfo:
    """One compared row: the base (reference), a baseline such as ``still``, or the base with one adapter."""

    name: str
    kind: str  # one of ROW_KINDS
    fingerprint: str | None = None
    adapter_ref: str | None = None
    adapter_path: str | None = None
    adapter_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SampleRecord:
    """Metrics of one generated video: one row, one clip, one seed."""

    row: str
    clip_id: str
    seed: int
    clip_group: str = ""
    view: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    per_frame: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    video: str | None = None  # relative to the folder holding metrics.json


@dataclass
class RealRecord:
    """Temporal and geometric statistics of one real held-out clip (the same continuation window)."""

    clip_id: str
    clip_group: str = ""
    view: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    video: str | None = None


@dataclass
class CrossViewRecord:
    """Cross-view Sampson error between two cameras of one clip group (``row`` may be ``real``)."""

    row: str
    clip_group: str
    seed: int | None
    views: list[str]
    clip_ids: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


@dataclass
class EvalResults:
    """Everything one evaluation run measured (the content of metrics.json)."""

    settings: dict[str, Any]
    dataset: dict[str, Any]
    base: dict[str, Any]
    rows: list[RowInfo]
    samples: list[SampleRecord] = field(default_factory=list)
    real: list[RealRecord] = field(default_factory=list)
    cross_view: list[CrossViewRecord] = field(default_factory=list)
    lpips: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    #: Wall-clock facts (start time, durations): the only part that differs between identical runs.
    run: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    def row(self, name: str) -> RowInfo:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no row {name!r} in these results; rows: {', '.join(r.name for r in self.rows)}")

    def row_names(self) -> list[str]:
        return [row.name for row in self.rows]

    # ---- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["samples"] = [
            {**asdict(s), "metrics": _encode_metrics(s.metrics), "per_frame": _encode_series(s.per_frame)}
            for s in self.samples
        ]
        data["real"] = [{**asdict(r), "metrics": _encode_metrics(r.metrics)} for r in self.real]
        data["cross_view"] = [{**asdict(c), "metrics": _encode_metrics(c.metrics)} for c in self.cross_view]
        data["summary"] = _encode_tree(self.summary)
        return data

    def to_json(self) -> str:
        return (
            json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
        )

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> EvalResults:
        if not isinstance(data, dict):
            raise ResultsFormatError(f"{source}: expected a JSON object at the top level")
        if data.get("schema") != SCHEMA:
            raise ResultsFormatError(f"{source}: schema {data.get('schema')!r} is not {SCHEMA!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ResultsFormatError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        for required in ("settings", "dataset", "base", "rows"):
            if required not in data:
                raise ResultsFormatError(f"{source}: missing field {required!r}")
        try:
            rows = [RowInfo(**r) for r in data["rows"]]
            for i, row in enumerate(rows):
                if row.kind not in ROW_KINDS:
                    raise ResultsFormatError(
                        f"{source}: rows[{i}].kind {row.kind!r} is not one of {', '.join(ROW_KINDS)}"
                    )
            samples = [
                SampleRecord(
                    **{
                        **s,
                        "metrics": _decode_metrics(s.get("metrics", {}), f"{source}: samples[{i}].metrics"),
                        "per_frame": _decode_series(
                            s.get("per_frame", {}), f"{source}: samples[{i}].per_frame"
                        ),
                    }
                )
                for i, s in enumerate(data.get("samples", []))
            ]
            real = [
                RealRecord(
                    **{**r, "metrics": _decode_metrics(r.get("metrics", {}), f"{source}: real[{i}].metrics")}
                )
                for i, r in enumerate(data.get("real", []))
            ]
            cross = [
                CrossViewRecord(
                    **{
                        **c,
                        "metrics": _decode_metrics(
                            c.get("metrics", {}), f"{source}: cross_view[{i}].metrics"
                        ),
                    }
                )
                for i, c in enumerate(data.get("cross_view", []))
            ]
        except TypeError as exc:
            raise ResultsFormatError(f"{source}: {exc}") from exc
        return cls(
            settings=data["settings"],
            dataset=data["dataset"],
            base=data["base"],
            rows=rows,
            samples=samples,
            real=real,
            cross_view=cross,
            lpips=data.get("lpips", {}),
            summary=_decode_tree(data.get("summary", {})),
            code_version=data.get("code_version", ""),
            run=data.get("run", {}),
            schema=data["schema"],
        )

    def numbers(self) -> dict[str, Any]:
        """Everything except :attr:`run` and :attr:`code_version`: identical when the same inputs run twice.

        The code version is provenance, not a measurement (it also moves when unrelated code is committed).
        """
        data = self.to_dict()
        data.pop("run")
        data.pop("code_version")
        return data


def _encode_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _encode_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_tree(v) for v in value]
    if isinstance(value, float):
        return encode_number(value)
    return value


def _decode_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _decode_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_tree(v) for v in value]
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    return value


def write_results(folder: str | os.PathLike[str], results: EvalResults) -> Path:
    """Write ``folder/metrics.json`` atomically; returns its path."""
    return atomic_write_text(Path(folder) / METRICS_NAME, results.to_json())


def read_results(path: str | os.PathLike[str]) -> EvalResults:
    """Read metrics.json (give the file or the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsFormatError(f"{path}: not valid JSON: {exc}") from exc
    return EvalResults.from_dict(data, str(path))
