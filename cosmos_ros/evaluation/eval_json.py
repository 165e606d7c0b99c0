"""``cosmos-ros eval --json``: the figures of the text summary as one JSON document.

Why a module of its own: the CLI prints text for people; scripts and CI read this document instead
of parsing the aligned table. Non-finite values are written as metrics.json writes them
(``"Infinity"``, ``"-Infinity"``, ``"NaN"``), so the document is strict JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosmos_ros.evaluation.results import REAL_ROW, EvalResults, encode_number


def _interval(entry: dict[str, Any]) -> dict[str, Any]:
    """mean / low / high / n of a summary entry, encoded; ``n_missing`` where the entry has it."""
    out = {key: encode_number(entry.get(key)) for key in ("mean", "low", "high", "n")}
    if "n_missing" in entry:
        out["n_missing"] = entry["n_missing"]
    return out


def summary_rows(results: EvalResults) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, one record per metric) in the order of the text table: real, base, still, adapters.

    Each cell holds the mean over clips with its 95 % interval and, for rows compared with the base
    (the still baseline and the adapters), ``delta`` = row - base paired by clip.
    """
    summary = results.summary
    columns = [
        r for r in (REAL_ROW, *results.row_names()) if any(r in per_row for per_row in summary.values())
    ]
    table = []
    for metric, per_row in summary.items():
        cells: dict[str, Any] = {}
        for row in columns:
            entry = per_row.get(row)
            if not entry:
                continue
            cell = _interval(entry)
            if "delta" in entry:
                cell["delta"] = _interval(entry["delta"])
            cells[row] = cell
        table.append({"metric": metric, "rows": cells})
    return columns, table


def eval_summary(
    results: EvalResults,
    *,
    out: str | Path,
    report: str | Path | None,
    registry: str | None,
    published: dict[str, dict[str, Any]],
    gate: Any,
    publishing: bool,
) -> dict[str, Any]:
    """The whole ``eval --json`` document.

    ``gate.passed`` is null without a gate, else whether every gated adapter passed (what exit
    status 0 vs 3 says); ``published`` is empty when nothing was attached to a registry.
    """
    columns, table = summary_rows(results)
    passed = None if gate is None else all(info["passed"] is not False for info in published.values())
    return {
        "ok": passed is not False,
        "out": str(out),
        "metrics": str(Path(out) / "metrics.json"),
        "report": str(report) if report is not None else None,
        "rows": [
            {
                "name": row.name,
                "kind": row.kind,
                "adapter_ref": row.adapter_ref,
                "adapter_path": row.adapter_path,
            }
            for row in results.rows
        ],
        "columns": columns,
        "summary": table,
        "registry": registry if publishing else None,
        "published": [
            {"adapter": ref, "passed": info["passed"], "status": info["status"], "checks": info["checks"]}
            for ref, info in published.items()
        ],
        "gate": None
        if gate is None
        else {"passed": passed, "promote_to": gate.promote_to, "rules": gate.to_dict().get("rules")},
    }
