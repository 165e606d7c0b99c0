"""Run the generation and capture nodes in one process on a multi-threaded executor.

For machines without ``launch`` (the pip wheels): ``cosmos-ros bringup --params FILE`` does what
``ros2 launch cosmos_ros cosmos_ros.launch.py`` does, minus RViz. Parameter files are ROS 2
parameter YAML (sections ``/**/generation_node`` and ``/**/capture_node``, as in config/).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cosmos_ros.nodes.spin import run_nodes


def share_config_dir() -> Path:
    """config/ of the installed package (ament share dir), or of the source checkout."""
    try:
        from ament_index_python.packages import get_package_share_directory

        shared = Path(get_package_share_directory("cosmos_ros")) / "config"
        if shared.is_dir():
            return shared
    except Exception:
        pass
    return Path(__file__).resolve().parents[2] / "config"


def default_params_files() -> list[Path]:
    config = share_config_dir()
    return [p for p in (config / "generation_node.yaml", config / "capture_node.yaml") if p.is_file()]


def resolve_embodiment(embodiment: str) -> str:
    """A path as given, or the name of a file in config/embodiments/."""
    if not embodiment:
        return ""
    path = Path(embodiment).expanduser()
    if path.is_file():
        return str(path)
    shipped = share_config_dir() / "embodiments" / f"{embodiment}.yaml"
    if shipped.is_file():
        return str(shipped)
    names = sorted(p.stem for p in (share_config_dir() / "embodiments").glob("*.yaml"))
    raise FileNotFoundError(
        f"embodiment {embodiment!r} is neither a file nor one of: {', '.join(names) or 'none'}"
    )


def bringup(
    params_files: Sequence[str | Path] = (),
    *,
    namespace: str = "",
    generation: dict[str, Any] | None = None,
    capture: dict[str, Any] | None = None,
    with_capture: bool = True,
    ros_args: Sequence[str] = (),
) -> int:
    """Spin both nodes until Ctrl-C. Later params files override earlier ones; dicts override files."""
    from rclpy.parameter import Parameter

    from cosmos_ros.nodes.capture_node import CaptureNode
    from cosmos_ros.nodes.generation_node import GenerationNode

    files = [*default_params_files(), *(Path(p) for p in params_files)]
    for path in files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"parameter file {path} does not exist")
    args = [
        "cosmos-ros-bringup",
        "--ros-args",
        *[a for f in files for a in ("--params-file", str(f))],
        *ros_args,
    ]

    def make() -> list[Any]:
        gen = GenerationNode(
            namespace=namespace,
            parameter_overrides=[Parameter(k, value=v) for k, v in (generation or {}).items()],
        )
        nodes: list[Any] = [gen]
        if with_capture:
            nodes.append(
                CaptureNode(
                    namespace=namespace,
                    parameter_overrides=[Parameter(k, value=v) for k, v in (capture or {}).items()],
                )
            )
        return nodes

    return run_nodes(make, args=args, num_threads=10)
