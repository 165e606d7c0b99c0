"""``ros2 run cosmos_ros <node> --help`` prints usage and exits; ROS arguments still reach rclpy.

``ros2 run`` only executes the console script in lib/cosmos_ros, so running the installed scripts
(and the modules) in real processes is the same path. Before the fix the node started and spun,
so these tests timed out instead of reading a usage line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ros_helpers import start_python, stop, wait_for_line

NODES = {
    "generation_node": ("cosmos_ros.nodes.generation_node", "model_path"),
    "capture_node": ("cosmos_ros.nodes.capture_node", "camera_topics"),
}


def _command(node: str) -> list[str]:
    """The installed console script if on PATH (what pip and colcon install), else ``python -m``."""
    script = shutil.which(node)
    if script and Path(script).parent == Path(sys.executable).parent:
        return [script]
    return [sys.executable, "-m", NODES[node][0]]


@pytest.mark.parametrize("node", sorted(NODES))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_usage_and_parameters_and_exits_zero(node: str, flag: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [*_command(node), flag], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {node} "), result.stdout
    assert "--ros-args" in result.stdout
    assert NODES[node][1] in result.stdout and "(default: " in result.stdout
    assert "[INFO]" not in result.stdout + result.stderr  # no node was created


@pytest.mark.parametrize("node", sorted(NODES))
def test_unknown_non_ros_argument_is_an_error(node: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [*_command(node), "--no-such-flag"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )  # fmt: skip
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in result.stderr


def test_ros_arguments_pass_through_to_rclpy() -> None:
    """Remapping, a parameter and the log level after ``--ros-args`` reach the node."""
    script = "import sys; from cosmos_ros.nodes.generation_node import main; sys.exit(main(sys.argv))"
    args = ["--ros-args", "-r", "__node:=help_probe", "-p", "autostart:=false", "--log-level", "debug"]
    proc = start_python(script, *args)
    try:
        seen = wait_for_line(proc, "[help_probe]: autostart is off", timeout=60)
    finally:
        tail = stop(proc)
    output = "\n".join(seen) + tail
    assert "[DEBUG]" in output  # --log-level debug reached rcl
    assert proc.returncode == 0, output
