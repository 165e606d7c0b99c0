"""Every launch file takes ``use_sim_time`` and ``log_level`` and hands them to every node it starts.

``launch`` and ``launch_ros`` have no PyPI wheels, so three levels:

- the source (AST): which ``DeclareLaunchArgument`` names each file declares, with a default and
  a description;
- the launch files' own code run against recording stand-ins of the launch API (only the
  constructors, which record what they are given), so the values each ``Node`` receives
  (``parameters``, ``ros_arguments``) are those the file computes from the arguments;
- the real ``launch_ros`` where it is importable (apt ROS installs); skipped elsewhere.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from ros_helpers import REPO_ROOT

LAUNCH_FILES = sorted((REPO_ROOT / "launch").glob("*.launch.py"))
EXPECTED = {"use_sim_time": "false", "log_level": "info"}  # name: default


def _declared(path: Path) -> dict[str, dict[str, Any]]:
    """``DeclareLaunchArgument("name", default_value=..., description=...)`` calls in the source."""
    found: dict[str, dict[str, Any]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DeclareLaunchArgument":
            name = ast.literal_eval(node.args[0])
            found[name] = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
    return found


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_source_declares_use_sim_time_and_log_level(launch_file: Path) -> None:
    declared = _declared(launch_file)
    for name, default in EXPECTED.items():
        assert name in declared, f"{launch_file.name} does not declare {name}"
        assert declared[name]["default_value"] == default
    for name, kwargs in declared.items():
        assert kwargs.get("description"), f"{launch_file.name}: {name} has no description"
    names_in_docstring = ast.get_docstring(ast.parse(launch_file.read_text())) or ""
    assert all(name in names_in_docstring for name in EXPECTED), "the module docstring lists the arguments"


class _Recorded:
    """A launch API class that records its constructor arguments and does nothing else."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and (self.args, self.kwargs) == (other.args, other.kwargs)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.args}{self.kwargs}"


def _stand_ins(monkeypatch: pytest.MonkeyPatch) -> dict[str, type]:
    """Recording classes under the module names the launch files import; returns them by name."""
    names = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction", "IncludeLaunchDescription"],
        "launch.substitutions": ["LaunchConfiguration"],
        "launch.launch_description_sources": ["PythonLaunchDescriptionSource"],
        "launch_ros": [],
        "launch_ros.actions": ["Node"],
        "launch_ros.parameter_descriptions": ["ParameterValue"],
    }
    classes: dict[str, type] = {}
    for module_name, class_names in names.items():
        module = types.ModuleType(module_name)
        for class_name in class_names:
            classes[class_name] = type(class_name, (_Recorded,), {})
            setattr(module, class_name, classes[class_name])
        monkeypatch.setitem(sys.modules, module_name, module)
    packages = types.ModuleType("ament_index_python.packages")
    packages.get_package_share_directory = lambda name: str(REPO_ROOT)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ament_index_python.packages", packages)
    return classes


def _run(launch_file: Path, monkeypatch: pytest.MonkeyPatch, **arguments: str) -> tuple[list[Any], dict]:
    """The file's actions after its OpaqueFunctions ran with ``arguments`` over the defaults."""
    classes = _stand_ins(monkeypatch)
    spec = importlib.util.spec_from_file_location(f"launch_under_test_{launch_file.stem}", launch_file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    entities = description.args[0]
    declared = {
        e.args[0]: e.kwargs["default_value"]
        for e in entities
        if isinstance(e, classes["DeclareLaunchArgument"])
    }
    unknown = set(arguments) - set(declared)
    assert not unknown, f"not declared: {unknown}"
    context = types.SimpleNamespace(launch_configurations={**declared, **arguments})
    actions: list[Any] = []
    for entity in entities:
        if isinstance(entity, classes["OpaqueFunction"]):
            actions += entity.kwargs["function"](context)
        elif not isinstance(entity, classes["DeclareLaunchArgument"]):
            actions.append(entity)
    return actions, classes


@pytest.mark.parametrize(("sim_time", "expected"), [("true", True), ("false", False)])
def test_main_launch_passes_both_to_every_node(
    sim_time: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch_file = REPO_ROOT / "launch" / "cosmos_ros.launch.py"
    actions, classes = _run(
        launch_file, monkeypatch, use_sim_time=sim_time, log_level="debug", use_rviz="true", namespace="arm"
    )
    nodes = [a for a in actions if isinstance(a, classes["Node"])]
    assert {n.kwargs["executable"] for n in nodes} == {"generation_node", "capture_node"}
    for node in nodes:
        # A dict after the YAML files: it wins over config/*.yaml and params_file.
        assert node.kwargs["parameters"][-1]["use_sim_time"] is expected
        assert node.kwargs["ros_arguments"] == ["--log-level", "debug"]
    (include,) = [a for a in actions if isinstance(a, classes["IncludeLaunchDescription"])]
    assert include.args[0].args[0] == str(REPO_ROOT / "launch" / "preview.launch.py")
    forwarded = dict(include.kwargs["launch_arguments"])
    assert forwarded == {"namespace": "arm", "use_sim_time": sim_time, "log_level": "debug"}


def test_main_launch_without_rviz_starts_no_rviz(monkeypatch: pytest.MonkeyPatch) -> None:
    actions, classes = _run(REPO_ROOT / "launch" / "cosmos_ros.launch.py", monkeypatch)
    assert all(isinstance(a, classes["Node"]) for a in actions) and len(actions) == 2
    for node in actions:  # the defaults
        assert node.kwargs["parameters"][-1]["use_sim_time"] is False
        assert node.kwargs["ros_arguments"] == ["--log-level", "info"]


def test_preview_launch_passes_both_to_rviz(monkeypatch: pytest.MonkeyPatch) -> None:
    actions, classes = _run(REPO_ROOT / "launch" / "preview.launch.py", monkeypatch)
    (rviz,) = actions
    config = classes["LaunchConfiguration"]
    assert rviz.kwargs["executable"] == "rviz2"
    assert rviz.kwargs["ros_arguments"] == ["--log-level", config("log_level")]
    (params,) = rviz.kwargs["parameters"]
    assert params["use_sim_time"] == classes["ParameterValue"](config("use_sim_time"), value_type=bool)


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=[p.name for p in LAUNCH_FILES])
def test_real_launch_description_has_the_arguments(launch_file: Path) -> None:
    pytest.importorskip(
        "launch_ros", reason="launch_ros is not installed (pip wheels); apt ROS installs have it"
    )
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    description = PythonLaunchDescriptionSource(str(launch_file)).get_launch_description(None)
    declared = {a.name: a.default_value for a in description.get_launch_arguments()}
    assert set(EXPECTED) <= set(declared)


def test_robot_side_needs_no_rviz_or_qt() -> None:
    """rviz2 is started only by preview.launch.py, and package.xml pulls in no Qt package.

    rosdep installs every dependency of package.xml on the robot computer; rviz2 and the
    distribution's OpenCV (python3-opencv, and cv_bridge through it) would bring Qt with them.
    """
    import xml.etree.ElementTree as ElementTree

    root = ElementTree.parse(REPO_ROOT / "package.xml").getroot()
    depends = {e.text for e in root if e.tag.endswith("depend")}
    assert {"rclpy", "launch_ros", "cosmos_ros_interfaces"} <= depends
    assert not depends & {"rviz2", "python3-opencv", "cv_bridge"}
    starts_rviz = {p.name for p in LAUNCH_FILES if 'executable="rviz2"' in p.read_text()}
    assert starts_rviz == {"preview.launch.py"}
