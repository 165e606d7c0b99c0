"""Launch files, params YAML and RViz config: everything they name exists and is installed.

The launch description itself loads only where ``launch_ros`` is importable (apt ROS installs);
elsewhere that test is skipped with the reason shown.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from ros_helpers import REPO_ROOT

LAUNCH_FILES = sorted((REPO_ROOT / "launch").glob("*.launch.py"))


def setup_py() -> tuple[set[str], set[str]]:
    """console_scripts names and data_files sources (glob patterns expanded) from setup.py."""
    tree = ast.parse((REPO_ROOT / "setup.py").read_text())
    scripts: set[str] = set()
    data: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and " = " in node.value:
            scripts.add(node.value.split(" = ")[0].strip())
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "glob":
            pattern = node.args[0].value
            data |= {str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.glob(pattern)}
    return scripts, data


def test_launch_files_name_only_installed_executables_configs_and_rviz() -> None:
    scripts, data_files = setup_py()
    assert {"generation_node", "capture_node", "bag_player"} <= scripts
    assert LAUNCH_FILES, "no launch files"
    for launch in LAUNCH_FILES:
        text = launch.read_text()
        assert str(launch.relative_to(REPO_ROOT)) in data_files
        for executable in re.findall(r'executable="([^"]+)"', text):
            assert executable in scripts or executable == "rviz2", f"{launch.name}: {executable}"
        for parts in re.findall(r'os\.path\.join\(share, ((?:"[^"]+"(?:, )?)+)\)', text):
            rel = "/".join(re.findall(r'"([^"]+)"', parts))
            if rel == "config/embodiments":
                continue
            assert rel in data_files, f"{launch.name} names {rel}, which setup.py does not install"
            assert (REPO_ROOT / rel).is_file()
    embodiments = [p for p in data_files if p.startswith("config/embodiments/")]
    assert embodiments, "no embodiment example installed"


def test_params_files_document_every_parameter_with_the_code_defaults() -> None:
    from cosmos_ros.nodes.capture_node import PARAMETERS as CAPTURE
    from cosmos_ros.nodes.generation_node import PARAMETERS as GENERATION

    for name, table in (("generation_node", GENERATION), ("capture_node", CAPTURE)):
        path = REPO_ROOT / "config" / f"{name}.yaml"
        params = yaml.safe_load(path.read_text())[f"/**/{name}"]["ros__parameters"]
        assert set(params) == set(table), f"{path.name} and the node's parameters differ"
        for key, (default, _description) in table.items():
            assert params[key] == default, f"{path.name}: {key} is {params[key]!r}, the code says {default!r}"
        lines = [line for line in path.read_text().splitlines() if re.match(r"\s+\w+:", line)]
        assert sum("#" in line for line in lines) >= len(table)  # every parameter line carries a comment


def test_embodiment_example_and_rviz_config_parse() -> None:
    from cosmos_ros.nodes.embodiment import load_embodiment

    for path in (REPO_ROOT / "config" / "embodiments").glob("*.yaml"):
        emb = load_embodiment(path)
        assert emb.camera_topic and emb.prompt_template and emb.resolution and emb.adapter
    rviz = yaml.safe_load((REPO_ROOT / "rviz" / "preview.rviz").read_text())
    topics = [d["Topic"] for d in rviz["Visualization Manager"]["Displays"]]
    assert {t["Value"] for t in topics} == {"generation_node/predicted_video", "generation_node/side_by_side"}
    assert all(
        t["Reliability Policy"] == "Reliable" and t["Durability Policy"] == "Transient Local" for t in topics
    )


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_launch_description_loads(launch_file: Path) -> None:
    pytest.importorskip(
        "launch_ros", reason="launch_ros is not installed (pip wheels); apt ROS installs have it"
    )
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    description = PythonLaunchDescriptionSource(str(launch_file)).get_launch_description(None)
    assert description.entities
    assert "launch_ros" in sys.modules
