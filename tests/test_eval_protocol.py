"""End to end: the tiny model, a synthetic two-camera dataset, a registered adapter, the CLI twice."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from eval_helpers import make_eval_workspace

from cosmos_ros.cli import main
from cosmos_ros.evaluation.cli import GATE_FAILED_EXIT
from cosmos_ros.evaluation.gate import GateConfig, GateRule, evaluate_gate, publish_results
from cosmos_ros.evaluation.results import BASE_ROW, REAL_ROW, STILL_ROW, read_results
from cosmos_ros.media.video import probe_video


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return make_eval_workspace(tmp_path_factory.mktemp("eval"))


def _run(ws, out: Path) -> int:
    return main([
        "eval", "--dataset", str(ws["dataset"]), "--split", "test", "--adapter", ws["ref"], "--seeds", "2",
        "--model", str(ws["model"]), "--registry", str(ws["registry"]), "-o", str(out), "--preset", "preview",
        "--steps", "1", "--device", "cpu", "--dtype", "float32", "--by", "tester", "--gate", "psnr:1000",
    ])  # fmt: skip


@pytest.fixture(scope="module")
def first_run(workspace):
    out = workspace["root"] / "run1"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert _run(workspace, out) == GATE_FAILED_EXIT  # psnr:1000 cannot pass: the exit status says so
    (workspace["root"] / "run1_stdout.txt").write_text(printed.getvalue())  # beside the run, not in it
    return out


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)


def test_metrics_json_has_every_row_clip_seed_and_provenance(workspace, first_run):
    results = read_results(first_run)
    ref = workspace["ref"]
    assert results.row_names() == [BASE_ROW, STILL_ROW, ref]
    assert [r.kind for r in results.rows] == ["base", "baseline", "adapter"]
    clips = ("ep0_front", "ep0_side")
    # Model rows once per seed; the deterministic still baseline once per clip (seed 0).
    assert sorted((s.row, s.clip_id, s.seed) for s in results.samples) == sorted(
        [(row, clip, seed) for row in (BASE_ROW, ref) for clip in clips for seed in (0, 1)]
        + [(STILL_ROW, clip, 0) for clip in clips]
    )
    assert results.dataset["manifest_sha256"] and results.base["fingerprint"].startswith("sha256:")
    assert results.row(workspace["ref"]).fingerprint  # the adapter artifact's sha256
    assert results.code_version and results.settings["num_frames"] == 5 and results.settings["seeds"] == 2
    for sample in results.samples:
        assert len(sample.per_frame["psnr"]) == 4  # 5 predicted frames minus 1 conditioning frame
        assert math.isfinite(sample.metrics["psnr"]) and -1 <= sample.metrics["ssim"] <= 1
        # The camera sweeps move most pixels: PSNR on them is measured for every row, still included.
        assert math.isfinite(sample.metrics["psnr_moving"]) and "psnr_moving" not in sample.notes
        if sample.row == STILL_ROW:
            assert sample.video is None  # no model, no video: the real clip's frame repeated
            assert sample.metrics["frame_diff_mean"] == 0.0  # nothing moves in the still prediction
        else:
            assert (first_run / sample.video).is_file()
    still_psnr = [s.metrics["psnr"] for s in results.samples if s.row == STILL_ROW]
    assert max(still_psnr) < 60  # the sweep moves: repeating a frame is not a perfect prediction
    assert {r.clip_id for r in results.real} == {"ep0_front", "ep0_side"}
    assert all(0.2 < r.metrics["moving_fraction"] < 1.0 for r in results.real)  # smooth texture: part moves
    # One clip group with two cameras: cross-view for real, every model row x seed and the still row.
    assert len(results.cross_view) == 1 + 2 * 2 + 1
    assert [c.seed for c in results.cross_view if c.row == STILL_ROW] == [0]
    for metric in ("psnr", "psnr_moving"):
        assert set(results.summary[metric]) == {BASE_ROW, STILL_ROW, ref}
        still = results.summary[metric][STILL_ROW]
        assert still["n"] == 2 and still["delta"]["n"] == 2
        # still minus base: the tiny random model predicts noise, so a frozen real frame beats it
        assert still["delta"]["mean"] > 3.0
    assert list(results.summary["moving_fraction"]) == [REAL_ROW]
    assert results.settings["motion_threshold"] == 12
    real_cross = next(c for c in results.cross_view if c.row == REAL_ROW)
    assert real_cross.views == ["/cam/front", "/cam/side"]
    assert "psnr" in results.summary and BASE_ROW in results.summary["psnr"]
    assert "delta" in results.summary["psnr"][workspace["ref"]]
    assert results.lpips["reason"]
    json.loads((first_run / "metrics.json").read_text())  # strict JSON (no bare NaN/Infinity)


def test_same_command_twice_gives_identical_numbers(workspace, first_run):
    out = workspace["root"] / "run2"
    assert _run(workspace, out) == GATE_FAILED_EXIT  # the very same command, another output folder
    assert read_results(first_run).numbers() == read_results(out).numbers()


def test_failed_gate_attaches_results_and_keeps_the_status(workspace, first_run):
    from cosmos_ros.registry import open_registry

    with open_registry(workspace["registry"]) as reg:
        record = reg.get(workspace["ref"])
    assert record.status == "draft"
    latest = record.evaluations[-1].results
    assert latest["passed"] is False and latest["gate"]["checks"][0]["metric"] == "psnr"
    assert latest["dataset_manifest_sha256"] == read_results(first_run).dataset["manifest_sha256"]


def test_passing_gate_promotes_to_approved(workspace, first_run):
    from cosmos_ros.registry import open_registry

    results = read_results(first_run)
    ref = workspace["ref"]
    gate = GateConfig([GateRule("psnr", 0.5), GateRule("temporal_sampson_px", 0.0)], promote_to="approved")
    # The adapter's measured differences, replaced by known ones so both outcomes are checked.
    results.summary["psnr"][ref]["delta"] = {"mean": 0.4, "low": 0.1, "high": 0.7, "n": 2}
    assert not evaluate_gate(results, ref, gate).passed
    results.summary["psnr"][ref]["delta"] = {"mean": 0.8, "low": 0.3, "high": 1.3, "n": 2}
    results.summary["temporal_sampson_px"][ref]["delta"] = {"mean": -0.2, "low": -0.3, "high": -0.1, "n": 2}
    assert evaluate_gate(results, ref, gate).passed
    with pytest.raises(ValueError, match="adapter rows only"):
        evaluate_gate(results, STILL_ROW, gate)  # the still baseline is context, never gated
    results.summary["psnr"][STILL_ROW]["delta"] = {"mean": 9.0, "low": 8.0, "high": 10.0, "n": 2}
    published = publish_results(results, workspace["registry"], gate, by="tester")
    assert list(published) == [ref]  # only the adapter: neither base nor still reach the registry
    assert published[ref]["passed"] and published[ref]["status"] == "approved"
    with open_registry(workspace["registry"]) as reg:
        assert reg.get(ref).status == "approved"


def test_report_references_only_existing_files_and_plays_h264(first_run):
    index = first_run / "report" / "index.html"
    parser = _Refs()
    parser.feed(index.read_text(encoding="utf-8"))
    videos = [ref for ref in parser.refs if ref.endswith(".mp4")]
    assert videos, "the report shows no videos"
    for ref in parser.refs:
        assert not ref.startswith(("http:", "https:", "//")), f"remote reference {ref}"
        assert (index.parent / ref).is_file(), f"{ref} does not exist"
    info = probe_video(index.parent / videos[0])
    assert info.frame_count == 5
    html = index.read_text(encoding="utf-8")
    assert "<svg" in html and "Student-t" in html and "LPIPS" in html
    assert "<td>still <span class='note'>(baseline)</span></td>" in html  # in the metric tables
    assert 'aria-label="PSNR on moving pixels bar chart"' in html and ">still</text>" in html  # and charts
    assert 'id="moving_fraction"' in html and "% of the frame" in html


def test_printed_summary_table_has_a_column_per_row_and_the_registry_only_adapters(workspace, first_run):
    printed = (workspace["root"] / "run1_stdout.txt").read_text()
    table = printed.split("summary (")[1].splitlines()[1:]
    assert table[0].split() == ["metric", REAL_ROW, BASE_ROW, STILL_ROW, workspace["ref"]]
    psnr_moving = next(line for line in table if line.split()[0] == "psnr_moving")
    assert psnr_moving.count("(") == 2  # still and the adapter, each with its delta vs base
    assert printed.count("registry: ") == 1 and f"registry: {workspace['ref']}:" in printed


def test_headless_browser_screenshot_of_the_report(first_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip(
            "Chromium is not installed: no headless screenshot of the report (apt-get install chromium)"
        )
    shot = first_run / "report_screenshot.png"
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={shot}",
        (first_run / "report" / "index.html").as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import cv2

    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2400, 1280)
    # a rendered report, not a blank or error page: text and charts cover a good part of it,
    # and the page's top has dark text on a light background
    ink = (image.min(axis=2) < 128).mean()
    assert 0.005 < ink < 0.6, f"{ink:.3f} of the screenshot is dark"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # charts and video posters add colours


def test_unknown_adapter_is_a_clean_cli_error(workspace, tmp_path, capsys):
    code = main([
        "eval", "--dataset", str(workspace["dataset"]), "--adapter", "nosuch@1",
        "--model", str(workspace["model"]),
        "--registry", str(workspace["registry"]), "-o", str(tmp_path / "x"), "--preset", "preview",
        "--device", "cpu", "--dtype", "float32", "--seeds", "1",
    ])  # fmt: skip
    assert code == 1
    assert "nosuch" in capsys.readouterr().err


def test_a_used_output_folder_is_refused_and_overwrite_replaces_only_eval_outputs(
    workspace, first_run, tmp_path, capsys, monkeypatch
):
    from cosmos_ros.evaluation import protocol

    monkeypatch.setattr(protocol, "run_evaluation", lambda *a, **kw: read_results(first_run))
    out = tmp_path / "out"
    (out / "videos" / "old_row").mkdir(parents=True)
    (out / "metrics.json").write_text("{}")
    args = [
        "eval", "--dataset", str(workspace["dataset"]), "--model", str(workspace["model"]), "--no-registry",
        "--no-report", "--adapter", str(workspace["root"] / "adapter"), "-o", str(out),
    ]  # fmt: skip
    assert main(args) == 1
    assert "is not empty" in capsys.readouterr().err and (out / "videos" / "old_row").is_dir()
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "videos" / "old_row").exists()  # the earlier run's videos are gone
    (out / "notes.txt").write_text("mine")
    assert main([*args, "--overwrite"]) == 1
    assert "notes.txt" in capsys.readouterr().err and (out / "notes.txt").is_file()


def test_bad_generation_options_and_a_missing_gpu_fail_before_the_model_loads(
    workspace, tmp_path, capsys, monkeypatch
):
    _no_generation(monkeypatch)
    base = [
        "eval", "--dataset", str(workspace["dataset"]), "--model", str(workspace["model"]), "--no-registry",
        "-o", str(tmp_path / "out"),
    ]  # fmt: skip
    for extra, needle in (
        (["--preset", "bogus"], "unknown preset 'bogus'; accepted: full, full-720p, preview"),
        (["--num-frames", "8"], "num_frames must be of the form 4k+1"),
        (["--steps", "0"], "steps must be a positive integer"),
    ):
        assert main(base + extra) == 1
        assert needle in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        assert main([*base, "--device", "cuda"]) == 1
        assert "CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _no_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to run the protocol (load the model, generate) fail the test."""
    from cosmos_ros.evaluation import protocol

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the evaluation ran although its arguments were invalid")

    monkeypatch.setattr(protocol, "run_evaluation", refuse)


def test_gate_without_a_registry_adapter_is_refused_before_generation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_generation(monkeypatch)
    folder = tmp_path / "adapter"
    folder.mkdir()
    common = [
        "eval", "--dataset", str(tmp_path / "no_dataset"), "--model", str(tmp_path / "no_model"),
        "-o", str(tmp_path / "out"), "--gate", "psnr:0.5",
    ]  # fmt: skip
    for extra in (["--adapter", str(folder)], ["--adapter", "tiny.pick@1", "--no-registry"], []):
        assert main(common + extra) == 1
        err = capsys.readouterr().err
        assert "--gate/--gate-file promote registry records" in err and "NAME[@VER]" in err
    assert not (tmp_path / "out").exists()


def test_registry_error_while_publishing_is_a_clean_cli_error(
    workspace: dict,
    first_run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cosmos_ros.evaluation import protocol

    monkeypatch.setattr(protocol, "run_evaluation", lambda *a, **kw: read_results(first_run))
    empty = tmp_path / "empty_registry"  # the adapter's record is not in this registry
    code = main([
        "eval", "--dataset", str(workspace["dataset"]), "--model", str(workspace["model"]),
        "--adapter", workspace["ref"], "--registry", str(empty), "-o", str(tmp_path / "out"), "--no-report",
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "not published to registry" in err and "tiny.pick" in err
