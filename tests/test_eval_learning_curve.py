"""Learning curve: nested subsets, real training of the tiny model on each, one evaluation, an SVG curve."""

from __future__ import annotations

import json
from html.parser import HTMLParser

from eval_helpers import make_tiny_dataset

from cosmos_ros.evaluation.learning_curve import nested_order, subset_sizes
from cosmos_ros.evaluation.results import read_results


def test_subsets_are_nested_prefixes_of_a_seeded_order():
    ids = [f"c{i}" for i in range(20)]
    order = nested_order(ids, seed=3)
    assert sorted(order) == sorted(ids) and order == nested_order(list(reversed(ids)), seed=3)
    assert subset_sizes(20, [0.1, 0.25, 0.5, 1.0]) == [2, 5, 10, 20]
    assert subset_sizes(3, [0.1, 0.25]) == [1]


def test_learning_curve_end_to_end(tmp_path):
    from cosmos_ros.cli import main
    from cosmos_ros.model.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "model", seed=0)
    dataset = make_tiny_dataset(tmp_path / "dataset", train_clips=2)
    out = tmp_path / "curve"
    code = main([
        "eval", "learning-curve", "--dataset", str(dataset.root), "--config", "tiny_cpu",
        "--fractions", "0.5,1.0",
        "-o", str(out), "--model", str(model), "--seeds", "1", "--preset", "preview", "--steps", "1",
        "--device", "cpu", "--dtype", "float32",
        "--set", "max_steps=2", "--set", "validation_clips=0", "--set", "checkpoint_every=100",
    ])  # fmt: skip
    assert code == 0
    curve = json.loads((out / "learning_curve.json").read_text())
    assert curve["sizes"] == {"clips_0001": 1, "clips_0002": 2}
    assert [p[0] for p in curve["curve"]["psnr"]["adapter"]] == [1, 2]
    assert [p[0] for p in curve["curve"]["psnr"]["still"]] == [1, 2]  # the baseline as a flat line
    assert "moving_fraction" not in curve["curve"]  # a property of the real clips: no curve
    results = read_results(out / "eval")
    assert results.row_names() == ["base", "still", "clips_0001", "clips_0002"]
    html = (out / "eval" / "report" / "index.html").read_text()
    assert "Learning curve" in html and "<polyline" in html

    refs: list[str] = []

    class Refs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            refs.extend(v for k, v in attrs if k in ("src", "href") and v)

    Refs().feed(html)
    assert refs and all((out / "eval" / "report" / r).is_file() for r in refs)
