"""Bag player: publishes a bag's camera topics at their recorded timing (``rate``, ``loop``).

For machines without ``ros2 bag play`` (the pip wheels): recorded demonstrations can drive the
capture node. Reads ROS 1 and ROS 2 bags with rosbags' AnyReader. ROS 2 messages are published
as their recorded CDR bytes (no decode); ROS 1 messages are converted to CDR first.

    bag_player BAG [--rate 2.0] [--loop] [--topics /cam/image_raw ...] [--restamp]
    ros2 run cosmos_ros bag_player --ros-args -p bag:=BAG -p rate:=2.0 -p loop:=true
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message

from cosmos_ros.nodes.qos import playback_qos

#: Message types published when no ``topics`` are given.
CAMERA_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")

PARAMETERS: dict[str, tuple[object, str]] = {
    "bag": ("", "bag file or folder (ROS 1 .bag, ROS 2 sqlite3/mcap folder)"),
    "topics": ([""], "topics to publish; [''] = every Image and CompressedImage topic"),
    "rate": (1.0, "playback speed factor (2.0 = twice as fast)"),
    "loop": (False, "start again at the end"),
    "restamp": (False, "set header.stamp to the publish time (for header-age checks downstream)"),
    "wait_for_subscribers": (5.0, "seconds to wait for a first subscriber before playing (0 = none)"),
}


def message_class(msgtype: str) -> Any:
    """The rclpy class for a rosbags type name such as ``sensor_msgs/msg/Image``."""
    package, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"message type {msgtype} is not importable in this ROS install: {exc}") from exc


class BagPlayer(Node):
    """Publishes recorded messages at their recorded spacing; :meth:`play` returns at the end."""

    def __init__(self, node_name: str = "bag_player", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.bag = Path(str(self.get_parameter("bag").value)).expanduser()
        self.rate = float(self.get_parameter("rate").value)
        self.loop = bool(self.get_parameter("loop").value)
        self.restamp = bool(self.get_parameter("restamp").value)
        self.wait_for_subscribers = float(self.get_parameter("wait_for_subscribers").value)
        wanted = [t for t in self.get_parameter("topics").value if t]
        if not str(self.get_parameter("bag").value):
            raise ValueError("no bag given: pass BAG or -p bag:=PATH")
        if not self.bag.exists():
            raise FileNotFoundError(f"bag {self.bag} does not exist")
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")

        from rosbags.highlevel import AnyReader

        self._reader = AnyReader([self.bag])
        self._reader.open()
        available = {c.topic: c.msgtype for c in self._reader.connections}
        if wanted:
            missing = [t for t in wanted if t not in available]
            if missing:
                raise ValueError(
                    f"{self.bag}: topics {missing} are not in the bag; it has: {', '.join(sorted(available))}"
                )
        else:
            wanted = [t for t, typ in available.items() if typ in CAMERA_TYPES]
            if not wanted:
                raise ValueError(f"{self.bag} holds no Image/CompressedImage topic; pass --topics")
        self.connections = [c for c in self._reader.connections if c.topic in wanted]
        self._classes = {c.topic: message_class(c.msgtype) for c in self.connections}
        self._topic_publishers = {
            topic: self.create_publisher(cls, topic, playback_qos()) for topic, cls in self._classes.items()
        }
        self.published = 0
        self._ros2_store: Any = None

    def _payload(self, connection: Any, rawdata: bytes) -> Any:
        cdr = rawdata if self._reader.is2 else self._ros1_to_ros2_cdr(connection, rawdata)
        if not self.restamp:
            return bytes(cdr)
        msg = deserialize_message(bytes(cdr), self._classes[connection.topic])
        if hasattr(msg, "header"):
            msg.header.stamp = self.get_clock().now().to_msg()
        return serialize_message(msg)

    def _ros1_to_ros2_cdr(self, connection: Any, rawdata: bytes) -> bytes:
        """A ROS 1 message as ROS 2 CDR: same fields, minus what ROS 2 dropped (``Header.seq``)."""
        from rosbags.typesys import Stores, get_typestore

        if self._ros2_store is None:
            self._ros2_store = get_typestore(Stores.ROS2_KILTED)
        msg = self._reader.deserialize(rawdata, connection.msgtype)
        converted = _as_ros2(msg, self._ros2_store)
        return bytes(self._ros2_store.serialize_cdr(converted, connection.msgtype))

    def _wait_for_subscribers(self) -> None:
        deadline = time.monotonic() + self.wait_for_subscribers
        while time.monotonic() < deadline and rclpy.ok():
            if any(pub.get_subscription_count() for pub in self._topic_publishers.values()):
                return
            time.sleep(0.05)

    def play(self) -> int:
        """Publish until the end of the bag (or forever with ``loop``); returns messages published."""
        self._wait_for_subscribers()
        looping = " looping" if self.loop else ""
        self.get_logger().info(
            f"playing {self.bag} ({', '.join(self._topic_publishers)}) at x{self.rate:g}{looping}"
        )
        while rclpy.ok():
            start_wall = time.monotonic()
            start_bag: int | None = None
            for connection, timestamp, rawdata in self._reader.messages(connections=self.connections):
                if start_bag is None:
                    start_bag = timestamp
                due = start_wall + (timestamp - start_bag) / 1e9 / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if not rclpy.ok():
                    break
                self._topic_publishers[connection.topic].publish(self._payload(connection, rawdata))
                self.published += 1
            if not self.loop:
                break
        return self.published

    def close(self) -> None:
        self._reader.close()


def _as_ros2(value: Any, store: Any) -> Any:
    """Rebuild a rosbags ROS 1 message object with the ROS 2 type of the same name."""
    msgtype = getattr(value, "__msgtype__", None)
    if msgtype is None:
        if isinstance(value, list):
            return [_as_ros2(v, store) for v in value]
        return value
    cls = store.types[msgtype]
    fields = [f for f in cls.__dataclass_fields__ if not f.startswith("__")]
    return cls(**{f: _as_ros2(getattr(value, f), store) for f in fields})


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    from rclpy.utilities import remove_ros_args

    parser = argparse.ArgumentParser(
        prog="bag_player", description="Publish a bag's camera topics at their recorded timing."
    )
    parser.add_argument("bag", nargs="?", help="bag file or folder (default: the 'bag' parameter)")
    parser.add_argument("--rate", type=float, help="playback speed factor (default 1.0)")
    parser.add_argument("--loop", action="store_true", default=None, help="start again at the end")
    parser.add_argument("--topics", nargs="+", help="topics to publish (default: all camera topics)")
    parser.add_argument(
        "--restamp", action="store_true", default=None, help="stamp headers with the publish time"
    )
    parser.add_argument(
        "--wait-for-subscribers", type=float, help="seconds to wait for a first subscriber (default 5)"
    )
    args = parser.parse_args(remove_ros_args(list(argv))[1:])
    return args, list(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from rclpy.parameter import Parameter

    argv = list(argv if argv is not None else sys.argv)
    args, ros_argv = parse_args(argv)
    overrides = [
        Parameter(name, value=value)
        for name, value in (
            ("bag", args.bag),
            ("rate", args.rate),
            ("loop", args.loop),
            ("topics", args.topics),
            ("restamp", args.restamp),
            ("wait_for_subscribers", args.wait_for_subscribers),
        )
        if value is not None
    ]
    rclpy.init(args=ros_argv)
    player = None
    try:
        player = BagPlayer(parameter_overrides=overrides)
        player.play()
        return 0
    except KeyboardInterrupt:
        return 0
    except (ValueError, FileNotFoundError) as exc:
        print(f"bag_player: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if player is not None:
            print(f"bag_player: published {player.published} messages", flush=True)
            player.close()
            player.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


if __name__ == "__main__":
    sys.exit(main())
