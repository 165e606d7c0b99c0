"""Shared pieces of the ROS node tests: the tiny model, a tiny adapter, node processes, a client.

Nodes run in their own processes (the real executables' code paths); the test process hosts one
client node that publishes fake camera frames, sends goals and collects what comes back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from ros_helpers import start_python, wait_for_line

NODE_SCRIPT = r"""
import sys
from cosmos_ros.nodes.{module} import main
sys.exit(main(["{module}", "--ros-args", *sys.argv[1:]]))
"""


def make_tiny_adapter(
    model_dir: Path, folder: Path, seed: int = 1, rank: int = 4, scale: float = 0.5
) -> Path:
    """A LoRA adapter folder that fits the tiny model's transformer (every block's to_q/to_v)."""
    from safetensors.numpy import save_file

    from cosmos_ros.model.adapter_folder import WEIGHTS_NAME, AdapterMetadata, write_adapter_metadata
    from cosmos_ros.model.fingerprint import model_fingerprint

    config = json.loads((model_dir / "transformer" / "config.json").read_text())
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    rng = np.random.default_rng(seed)
    tensors = {}
    for block in range(config["num_layers"]):
        for module in ("attn1.to_q", "attn1.to_v"):
            prefix = f"transformer.transformer_blocks.{block}.{module}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, dim)).astype(np.float32) * scale
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((dim, rank)).astype(np.float32) * scale
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    write_adapter_metadata(
        folder,
        AdapterMetadata(
            adapter_type="lora",
            rank=rank,
            alpha=float(rank),
            target_modules=["to_q", "to_v"],
            base_fingerprint=model_fingerprint(model_dir),
        ),
    )
    return folder


def make_misfit_adapter(model_dir: Path, folder: Path, extra_dim: int = 8) -> Path:
    """An adapter whose metadata names the tiny model as its base but whose LoRA dims do not fit it.

    Passes every check that reads only files (weights exist, base fingerprint matches); only the
    shape check against the loaded transformer refuses it.
    """
    from safetensors.numpy import load_file, save_file

    from cosmos_ros.model.adapter_folder import WEIGHTS_NAME

    make_tiny_adapter(model_dir, folder)
    tensors = load_file(str(folder / WEIGHTS_NAME))
    wider = {}
    for key, t in tensors.items():  # lora_A is (rank, dim), lora_B is (dim, rank)
        rows, cols = t.shape
        shape = (rows, cols + extra_dim) if ".lora_A." in key else (rows + extra_dim, cols)
        wider[key] = np.full(shape, 0.01, np.float32)
    save_file(wider, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    return folder


def start_node(
    module: str, params: dict[str, Any], ready: str, timeout: float = 60.0, ros_args: list[str] | None = None
) -> tuple[Any, list[str]]:
    """Start ``cosmos_ros.nodes.<module>`` in a process with ``-p`` parameters; wait for ``ready``."""
    args: list[str] = list(ros_args or [])
    for name, value in params.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = "[" + ",".join(f"'{v}'" if isinstance(v, str) else str(v) for v in value) + "]"
        else:
            text = str(value)
        args += ["-p", f"{name}:={text}"]
    proc = start_python(NODE_SCRIPT.replace("{module}", module), *args)
    lines = wait_for_line(proc, ready, timeout=timeout)
    return proc, lines


def camera_frame(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    frame[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
    frame[..., 2] = rng.integers(0, 255, (height, width), dtype=np.uint8)
    return frame


class Client:
    """One rclpy node in the test process, spun by a background multi-threaded executor."""

    def __init__(self, name: str = "test_client") -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor

        self.context = Context()  # its own context: several clients may live at once
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()

    def wait(self, future: Any, timeout: float = 60.0) -> Any:
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        assert done.wait(timeout), f"no answer within {timeout} s"
        return future.result()

    def camera(self, topic: str, frame: np.ndarray, encoding: str = "rgb8", period: float = 0.05,
               wait_for_subscriber: float = 10.0):  # fmt: skip
        """Publish ``frame`` on ``topic`` every ``period`` s (best effort, like a driver); returns stop().

        Returns once a subscriber has matched and a few frames went out (DDS discovery can take
        seconds on a loaded machine), or after ``wait_for_subscriber`` s when nobody subscribes.
        """
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from cosmos_ros.media.ros_image import rgb_to_raw

        pub = self.node.create_publisher(Image, topic, qos_profile_sensor_data)
        if encoding in ("rgb8", "bgr8", "mono8"):
            data, step = rgb_to_raw(frame, encoding)
        else:  # an encoding nobody decodes: bytes of the right size, a made-up name
            data, step = frame.tobytes(), frame.shape[1] * 3
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                msg = Image(
                    height=frame.shape[0], width=frame.shape[1], encoding=encoding, step=step, data=data
                )
                msg.header.stamp = self.node.get_clock().now().to_msg()
                msg.header.frame_id = "camera_optical"
                pub.publish(msg)
                stop.wait(period)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + wait_for_subscriber
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(4 * period)

        def stop_camera() -> None:
            stop.set()
            thread.join()

        return stop_camera

    def lifecycle(self, node: str) -> Callable[[int], bool]:
        """``transition(id) -> success`` over ``node``'s lifecycle change_state service."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        change = self.node.create_client(ChangeState, f"{node}/change_state")
        assert change.wait_for_service(timeout_sec=10), f"{node}/change_state not discovered"

        def transition(tid: int) -> bool:
            request = ChangeState.Request(transition=Transition(id=tid))
            return self.wait(change.call_async(request), 60).success

        return transition

    def collect(self, msg_type: Any, topic: str, qos: Any) -> list[Any]:
        received: list[Any] = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def send_goal(
        self, client: Any, goal: Any, feedback: list[Any] | None = None, timeout: float = 30.0
    ) -> Any:
        assert client.wait_for_server(timeout_sec=timeout), "action server not discovered"
        callback: Callable[[Any], None] | None = (
            (lambda m: feedback.append(m.feedback)) if feedback is not None else None
        )
        handle = self.wait(client.send_goal_async(goal, feedback_callback=callback), timeout)
        assert handle is not None and handle.accepted
        return handle


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {timeout} s")


def tiny_model_dir(tmp_path_factory: Any) -> Path:
    """The tiny model, built once per pytest session (every node test file shares it)."""
    from cosmos_ros.model.tiny import make_tiny_model

    path = tmp_path_factory.getbasetemp() / "nodes_tiny_model"
    if not (path / "model_index.json").is_file():
        make_tiny_model(path, seed=0)
    return path
