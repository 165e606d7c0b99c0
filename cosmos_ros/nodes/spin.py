"""Start rclpy, spin some nodes on a multi-threaded executor, shut down cleanly on Ctrl-C."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

log = logging.getLogger(__name__)


def run_nodes(
    make_nodes: Callable[[], Sequence[Node]],
    args: Sequence[str] | None = None,
    num_threads: int = 8,
) -> int:
    """Create the nodes after ``rclpy.init(args)`` and spin them until shutdown.

    Enough executor threads are used that a running generation (one thread), a capture action
    waiting for it (one more) and queued goals never starve services, parameters and cancels.
    """
    rclpy.init(args=list(args) if args is not None else None)
    nodes: Sequence[Node] = ()
    executor = MultiThreadedExecutor(num_threads=num_threads)
    try:
        nodes = make_nodes()
        for node in nodes:
            executor.add_node(node)
        executor.spin()
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
