"""``cosmos-ros bringup`` and ``cosmos-ros node ...``: the nodes without ``ros2 launch``/``ros2 run``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from cosmos_ros.registry.store import REGISTRY_ENV

NODE_MODULES = {
    "generation": "cosmos_ros.nodes.generation_node",
    "capture": "cosmos_ros.nodes.capture_node",
    "bag-player": "cosmos_ros.nodes.bag_player",
}


def register(subparsers: Any) -> None:
    bring = subparsers.add_parser(
        "bringup",
        help="run the generation and capture nodes in one process (no 'launch' needed)",
        description=(
            "Run generation_node and capture_node in one process on a multi-threaded executor, with "
            "the package's config/generation_node.yaml and config/capture_node.yaml as defaults. "
            "Same as 'ros2 launch cosmos_ros cosmos_ros.launch.py' without RViz."
        ),
        epilog="Example: cosmos-ros bringup --params my_robot.yaml --model ~/models/cosmos2.5",
    )
    bring.add_argument(
        "--params",
        action="append",
        default=[],
        metavar="FILE",
        help="ROS 2 parameter YAML (sections /**/generation_node, /**/capture_node); repeatable, later "
        "files win; applied over the package defaults (default: only the package defaults)",
    )
    bring.add_argument(
        "--model",
        "--model-path",
        dest="model_path",
        metavar="DIR",
        default="",
        help="generation_node model_path: the local diffusers folder (default: from the params)",
    )
    bring.add_argument(
        "--camera-topic",
        default="",
        help="capture_node camera topic; wins over the embodiment's and the params' "
        "(default: from the params/embodiment)",
    )
    bring.add_argument(
        "--registry",
        default=os.environ.get(REGISTRY_ENV, ""),
        metavar="DIR",
        help="generation_node registry_path: the adapter registry (default: $COSMOS_ROS_REGISTRY if set, "
        "else from the params: none unless they name one)",
    )
    bring.add_argument(
        "--embodiment",
        default="",
        help="embodiment file, or a name from config/embodiments/ (default: none)",
    )
    bring.add_argument("--namespace", default="", help="namespace of both nodes (default: none)")
    bring.add_argument(
        "--no-capture", action="store_true", help="run the generation node only (default: run both)"
    )
    bring.set_defaults(func=_bringup)

    node = subparsers.add_parser(
        "node",
        help="run one ROS 2 node (like 'ros2 run cosmos_ros ...')",
        description="Run one node; the remaining arguments go to it (e.g. --ros-args -p model_path:=DIR).",
    )
    node.add_argument("name", choices=sorted(NODE_MODULES), help="which node")
    node.add_argument(
        "args", nargs=argparse.REMAINDER, help="arguments for the node (ROS arguments included)"
    )
    node.set_defaults(func=_node)


def _bringup(args: argparse.Namespace) -> int:
    from cosmos_ros.cli import CliError
    from cosmos_ros.nodes.bringup import bringup, resolve_embodiment

    generation: dict[str, Any] = {}
    capture: dict[str, Any] = {}
    if args.model_path:
        generation["model_path"] = args.model_path
    if args.registry:
        generation["registry_path"] = os.path.expanduser(args.registry)
    if args.camera_topic:
        capture["camera_topic"] = args.camera_topic
    try:
        if args.embodiment:
            capture["embodiment_file"] = resolve_embodiment(args.embodiment)
        return bringup(
            args.params,
            namespace=args.namespace,
            generation=generation,
            capture=capture,
            with_capture=not args.no_capture,
        )
    except (FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from exc


def _node(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(NODE_MODULES[args.name])
    own = args.args[: args.args.index("--ros-args")] if "--ros-args" in args.args else args.args
    parameters = getattr(module, "PARAMETERS", None)
    if parameters is not None and any(a in ("-h", "--help") for a in own) and args.name != "bag-player":
        print(_parameter_help(args.name, parameters))  # the node itself would start, not print help
        return 0
    return int(module.main([args.name, *args.args]) or 0)


def _parameter_help(name: str, parameters: dict[str, tuple[object, str]]) -> str:
    """The node's ROS parameters with their defaults: what --help shows for a node that takes only those."""
    import json

    width = max(len(p) for p in parameters)
    lines = [
        f"usage: cosmos-ros node {name} [--ros-args [--params-file FILE] [-p NAME:=VALUE ...]]",
        "",
        f"ROS 2 parameters of {name}_node (config/{name}_node.yaml documents the same):",
    ]
    for param, (default, description) in parameters.items():
        lines.append(f"  {param:<{width}}  {description} (default: {json.dumps(default)})")
    return "\n".join(lines)
