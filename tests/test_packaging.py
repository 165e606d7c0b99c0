"""The package installs the same way from a plain (non-editable) pip install as in development."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ros_helpers import REPO_ROOT


def test_wheel_install_maps_bag_tools_and_training_under_cosmos_ros(tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-cache-dir", "--target", str(target), str(REPO_ROOT)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert (target / "cosmos_ros" / "training" / "loop.py").is_file()
    assert (target / "cosmos_ros" / "bag_tools" / "convert.py").is_file()
    assert (target / "cosmos_ros" / "training" / "configs" / "lora_recipe.yaml").is_file()
    assert not (target / "training").exists() and not (target / "bag_tools").exists()
    probe = (
        "import cosmos_ros, cosmos_ros.training.config, cosmos_ros.bag_tools.dataset_format;"
        "print(cosmos_ros.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {probe}"],
        cwd=tmp_path, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.stdout.strip().startswith(str(target))
