"""The end-to-end training benchmark's bookkeeping, on the tiny model (CPU; no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_train_e2e.py"


def test_short_run_phases_are_counted_and_scaled_to_the_recipe_run(tmp_path):
    out = tmp_path / "e2e.json"
    cmd = [
        sys.executable,
        str(BENCH),
        "--quick",
        "--clips",
        "4",
        "--val-clips",
        "1",
        "--steps",
        "8",
        "--every",
        "4",
    ]
    proc = subprocess.run(
        [*cmd, "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    short, full = result["short_run"], result["full_run"]
    # the real trainer ran: 8 steps, a checkpoint and a validation every 4 (the last validation is
    # the final one), two probes, one precompute of the 4 clips, and the adapter folder was written
    assert len(short["step_times_s"]) == 8 and short["adapter_dir_written"]
    phases = short["phases_s"]
    assert [len(phases[k]) for k in ("checkpoint", "validation", "probe", "precompute")] == [2, 2, 2, 1]
    # validation's own loss pass is part of the validation phase, not counted as a probe again
    assert short["fixed_costs_s"]["probes_s"] == sum(phases["probe"])
    # 92 clips x 100 epochs with the recipe config's checkpoint/validation every 500 steps
    assert (full["steps"], full["checkpoints"], full["validations"]) == (9200, 19, 19)
    assert full["steps_s"] == short["median_step_s"] * 9200
    assert full["precompute_s"] == short["precompute_per_clip_s"] * (92 + 1)
    parts = ("fixed_s", "precompute_s", "steps_s", "checkpoints_s", "validations_s")
    assert abs(sum(full[k] for k in parts) / 3600 - full["estimate_hours"]) < 1e-9
