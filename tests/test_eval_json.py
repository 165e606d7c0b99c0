"""``cosmos-ros eval --json`` (issue 20): one JSON document on stdout with the figures the text shows.

One real evaluation (tiny random model, one step) writes the JSON; the text run then re-reads the
same metrics.json (run_evaluation replaced by read_results), so every cell of the printed table
must equal the document's figures.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from eval_helpers import make_eval_workspace
from train_helpers import one_thread

from cosmos_ros.cli import main
from cosmos_ros.evaluation.cli import GATE_FAILED_EXIT, _summary_number
from cosmos_ros.evaluation.results import read_results

_threads = pytest.fixture(autouse=True)(one_thread)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return make_eval_workspace(tmp_path_factory.mktemp("evaljson"))


def _argv(ws, out: Path, *extra: str) -> list[str]:
    return [
        "eval", "--dataset", str(ws["dataset"]), "--split", "test", "--adapter", ws["ref"], "--seeds", "1",
        "--model", str(ws["model"]), "--registry", str(ws["registry"]), "-o", str(out), "--preset", "preview",
        "--steps", "1", "--device", "cpu", "--dtype", "float32", "--by", "tester", *extra,
    ]  # fmt: skip


def _cell(entry: dict | None, with_delta: bool) -> str:
    """A text-table cell from a JSON cell, formatted as the text summary formats it."""
    if entry is None:
        return ""

    def number(value: object) -> float | None:
        return float(value) if isinstance(value, (int, float, str)) else None

    text = _summary_number(number(entry["mean"]))
    if with_delta and "delta" in entry:
        text += f" ({_summary_number(number(entry['delta']['mean']), signed=True)})"
    return text


def test_eval_json_holds_the_table_gate_and_files_the_text_shows(workspace, tmp_path, capsys, monkeypatch):
    out = tmp_path / "js"
    code = main(_argv(workspace, out, "--gate", "psnr:1000", "--json"))
    captured = capsys.readouterr()
    assert code == GATE_FAILED_EXIT, captured.err  # the gate fails: exit code as without --json
    data = json.loads(captured.out)  # the whole of stdout is one document
    assert data["ok"] is False and data["out"] == str(out)
    assert data["metrics"] == str(out / "metrics.json") and Path(data["report"]).is_file()
    assert [r["name"] for r in data["rows"]][:2] == ["base", "still"] and len(data["rows"]) == 3
    assert data["columns"][0] == "real" and "still" in data["columns"]
    assert data["gate"]["passed"] is False and data["gate"]["rules"][0]["metric"] == "psnr"
    (pub,) = data["published"]
    assert (
        pub["adapter"] == workspace["ref"] and pub["passed"] is False and pub["checks"][0]["metric"] == "psnr"
    )

    from cosmos_ros.evaluation import protocol

    monkeypatch.setattr(protocol, "run_evaluation", lambda *a, **kw: read_results(out))
    text_out = tmp_path / "text"
    assert main(_argv(workspace, text_out, "--gate", "psnr:1000")) == GATE_FAILED_EXIT
    text = capsys.readouterr().out
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("summary ("))
    header = lines[start + 1].split()
    assert header == ["metric", *data["columns"]]
    table = list(itertools.takewhile(lambda line: line.startswith("  "), lines[start + 2 :]))
    assert len(table) == len(data["summary"]) > 3
    by_metric = {record["metric"]: record["rows"] for record in data["summary"]}
    for line in table:
        metric = line.split()[0]
        # Cells are aligned by column width: rebuild the line from the JSON and compare whole.
        cells = [metric] + [
            _cell(by_metric[metric].get(col), col not in ("real", "base")) for col in header[1:]
        ]
        assert re.sub(r"\s+", " ", line.strip()) == re.sub(r"\s+", " ", " ".join(c for c in cells if c)), line
    still = by_metric["psnr"]["still"]
    assert isinstance(still["mean"], float) and "delta" in still
    verdict = re.search(r"^registry: (\S+): results attached; gate (\w+) status (\w+)$", text, re.M)
    assert verdict is not None, text
    assert (
        verdict.group(1) == pub["adapter"]
        and verdict.group(2) == "FAILED"
        and verdict.group(3) == pub["status"]
    )
    assert f"metrics: {text_out}/metrics.json" in text


def test_eval_json_without_registry_or_gate(workspace, tmp_path, capsys, monkeypatch):
    from cosmos_ros.evaluation import protocol

    source = tmp_path / "src"
    assert main(_argv(workspace, source, "--no-registry", "--no-report")) == 0
    capsys.readouterr()
    monkeypatch.setattr(protocol, "run_evaluation", lambda *a, **kw: read_results(source))
    code = main(_argv(workspace, tmp_path / "js", "--no-registry", "--no-report", "--json"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data = json.loads(captured.out)
    assert (
        data["ok"] is True and data["gate"] is None and data["published"] == [] and data["registry"] is None
    )
    assert data["report"] is None
    assert {"psnr", "ssim"} <= {record["metric"] for record in data["summary"]}


def test_help_documents_the_json_flag(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "--json" in capsys.readouterr().out
