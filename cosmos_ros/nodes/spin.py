"""Start rclpy, spin some nodes on a multi-threaded executor, shut down cleanly on Ctrl-C."""

from __future__ import annotations

import argparse
import json
import logging
import threading
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import rclpy
import rclpy.logging
from rclpy.action import ActionClient
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

log = logging.getLogger(__name__)


def parse_node_args(
    prog: str, description: str, parameters: dict[str, tuple[Any, str]], argv: Sequence[str]
) -> None:
    """Answer ``--help`` (usage and the ROS parameters, then exit 0) before rclpy starts a node.

    Why: ``ros2 run cosmos_ros generation_node --help`` runs this entry point, and rclpy alone
    ignores ``--help`` and starts the node. ROS arguments (``--ros-args ... [--]``) pass through
    untouched for ``rclpy.init``; any other argument is an error (exit 2), as the node takes its
    settings only as ROS parameters. ``argv[0]`` is the program path, as in ``sys.argv``.
    """
    from rclpy.utilities import remove_ros_args

    width = max(len(name) for name in parameters)
    lines = [f"ROS 2 parameters (config/{prog}.yaml documents the same):"]
    for name, (default, text) in parameters.items():
        lines.append(f"  {name:<{width}}  {text} (default: {json.dumps(default)})")
    parser = argparse.ArgumentParser(
        prog=prog,
        usage=f"{prog} [-h] [--ros-args [--params-file FILE] [-p NAME:=VALUE ...] [--log-level LEVEL]]",
        description=description.replace("``", "'"),
        epilog="\n".join(lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(remove_ros_args(list(argv))[1:])


def run_nodes(
    make_nodes: Callable[[], Sequence[Node]],
    args: Sequence[str] | None = None,
    num_threads: int = 8,
) -> int:
    """Create the nodes after ``rclpy.init(args)`` and spin them until shutdown.

    Enough executor threads are used that a running generation (one thread), a capture action
    waiting for it (one more) and queued goals never starve services, parameters and cancels.
    A callback that raises is logged with its traceback and the nodes keep spinning: rclpy's
    executor would otherwise end the process on the first failed request.
    """
    rclpy.init(args=list(args) if args is not None else None)
    nodes: Sequence[Node] = ()
    executor = MultiThreadedExecutor(num_threads=num_threads)
    try:
        nodes = make_nodes()
        for node in nodes:
            executor.add_node(node)
        _spin_surviving_callback_errors(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown(timeout_sec=1.0)
        for node in nodes:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


def _spin_surviving_callback_errors(executor: MultiThreadedExecutor) -> None:
    logger = rclpy.logging.get_logger("cosmos_ros")
    while rclpy.ok():
        try:
            executor.spin()
            return
        except (KeyboardInterrupt, ExternalShutdownException):
            raise
        except Exception:
            logger.error(f"a callback failed; the nodes keep running:\n{traceback.format_exc()}")


def action_client(node: Node, action_type: Any, name: str, **kwargs: Any) -> Any:
    """An ``rclpy.action.ActionClient`` that is safe to create while an executor spins ``node``.

    Why: rclpy (9.1, Kilted) registers a new ActionClient with its node before it creates the
    client's lock, so an executor thread spinning the node at that moment calls
    ``get_num_entities`` on a half-built client, raises ``AttributeError: ... '_lock'`` and stops
    spinning: services and actions of that node then never answer. Lifecycle nodes (configure
    runs inside the executor) and clients created after spin-up meet this. Here the lock exists
    before the client is registered.
    """
    return _LockFirstActionClient(node, action_type, name, **kwargs)


class _LockFirstActionClient(ActionClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._lock = threading.Lock()  # rclpy sets it again after add_waitable; this one covers the gap
        super().__init__(*args, **kwargs)
