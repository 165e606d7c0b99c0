"""Launch files, params YAML and RViz config: everything they name exists and is installed.

The install check runs setup.py's own ``install_data`` (what ``colcon build`` / ``setup.py install``
runs for ``data_files``) into a temporary prefix and looks for every file the launch files name in
that share directory, so a glob that misses a file fails here, not on a robot.

The launch description itself loads only where ``launch_ros`` is importable (apt ROS installs);
elsewhere that test is skipped with the reason shown.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from ros_helpers import REPO_ROOT

LAUNCH_FILES = sorted((REPO_ROOT / "launch").glob("*.launch.py"))
PACKAGE = "cosmos_ros"
#: ``os.path.join(share, "a", "b")`` or ``os.path.join(get_package_share_directory(PACKAGE), "a", "b")``;
#: a non-literal tail (``name + ".yaml"``) is group 2, and the literal part is then a folder.
SHARE_PATH = re.compile(
    r'os\.path\.join\(\s*(?:share|get_package_share_directory\([^()]*\))\s*,\s*((?:"[^"]+"\s*,?\s*)+)([^)]*)\)'
)


def install_data(prefix: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run setup.py's ``install_data`` into ``prefix``; returns the Distribution (entry points, options)."""
    import setuptools  # noqa: F401 - first, so ``distutils`` is setuptools' copy (stdlib has none on 3.12)

    run_setup = importlib.import_module("distutils.core").run_setup
    monkeypatch.chdir(REPO_ROOT)  # setup.py globs relative to the working directory
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "setup.py install is deprecated": colcon still runs it
        return run_setup("setup.py", ["install_data", "--install-dir", str(prefix)], stop_after="run")


def share_paths(text: str) -> list[str]:
    """Paths below the package share directory that a launch file names; folders end with ``/``."""
    return [
        "/".join(re.findall(r'"([^"]+)"', parts)) + ("/" if tail.strip() else "")
        for parts, tail in SHARE_PATH.findall(text)
    ]


def test_launch_files_name_only_installed_executables_configs_and_rviz(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = install_data(tmp_path / "install", monkeypatch)
    share = tmp_path / "install" / "share" / PACKAGE
    assert (
        tmp_path / "install" / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    ).is_file()
    assert (share / "package.xml").is_file()
    # ros2 run looks in lib/<package>: setup.cfg sends the console scripts there.
    assert dist.get_option_dict("install")["install_scripts"][1] == f"$base/lib/{PACKAGE}"
    scripts = dict(entry.split(" = ") for entry in dist.entry_points["console_scripts"])
    assert {"generation_node", "capture_node", "bag_player"} <= set(scripts)
    for name, target in scripts.items():
        module = target.split(":")[0]
        assert importlib.util.find_spec(module) is not None, f"console script {name}: no module {module}"

    assert LAUNCH_FILES, "no launch files"
    for launch in LAUNCH_FILES:
        installed = share / "launch" / launch.name
        assert installed.is_file(), f"{launch.name} is not installed"
        text = installed.read_text()
        for executable in re.findall(r'executable="([^"]+)"', text):
            assert executable in scripts or executable == "rviz2", f"{launch.name}: {executable}"
        named = share_paths(text)
        assert named or "get_package_share_directory" not in text, f"{launch.name}: no share path parsed"
        for rel in named:
            if rel.endswith("/"):  # a file picked at launch time (config/embodiments/<name>.yaml)
                assert any((share / rel).glob("*.yaml")), f"{launch.name}: nothing installed in {rel}"
                continue
            assert (share / rel).is_file(), (
                f"{launch.name} names {rel}, which the install does not put in share"
            )
    assert "rviz/preview.rviz" in share_paths((share / "launch" / "preview.launch.py").read_text())


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
