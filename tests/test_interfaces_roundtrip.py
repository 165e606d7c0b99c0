"""The generated cosmos_ros_interfaces work between two real rclpy processes over DDS."""

from __future__ import annotations

import time

import pytest
from ros_helpers import start_python, stop, wait_for_line

rclpy = pytest.importorskip("rclpy")
from cosmos_ros_interfaces.action import PredictVideo  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402

SERVER = r"""
import time, rclpy
from rclpy.action import ActionServer
from cosmos_ros_interfaces.action import PredictVideo

def execute(handle):
    goal = handle.request
    # Feedback is a topic: the first message can beat DDS discovery of the client's subscription
    # (a known ROS 2 race), so give discovery a moment, as real generation does by encoding first.
    time.sleep(0.5)
    for step in range(1, 4):
        fb = PredictVideo.Feedback(stage="denoise", step=step, total_steps=3, elapsed=0.01 * step)
        handle.publish_feedback(fb)
        time.sleep(0.05)
    handle.succeed()
    return PredictVideo.Result(success=True, message="echo:" + goal.prompt, frame_count=goal.num_frames,
                               adapter_id=goal.adapter, fps=16.0)

rclpy.init()
node = rclpy.create_node("roundtrip_server")
server = ActionServer(node, PredictVideo, "predict_video", execute)
print("SERVER READY", flush=True)
try:
    rclpy.spin(node)
except KeyboardInterrupt:
    pass
"""


def test_predict_video_goal_feedback_result_across_processes() -> None:
    server = start_python(SERVER)
    try:
        wait_for_line(server, "SERVER READY")
        rclpy.init()
        node = rclpy.create_node("roundtrip_client")
        try:
            client = ActionClient(node, PredictVideo, "predict_video")
            assert client.wait_for_server(timeout_sec=20.0), "action server not discovered"
            feedback: list[tuple[str, int, int]] = []
            goal = PredictVideo.Goal(prompt="pick the block", adapter="arm@2", num_frames=9, seed=7)
            send = client.send_goal_async(
                goal,
                feedback_callback=lambda msg: feedback.append(
                    (msg.feedback.stage, msg.feedback.step, msg.feedback.total_steps)
                ),
            )
            rclpy.spin_until_future_complete(node, send, timeout_sec=10.0)
            handle = send.result()
            assert handle is not None and handle.accepted
            result_future = handle.get_result_async()
            rclpy.spin_until_future_complete(node, result_future, timeout_sec=10.0)
            result = result_future.result().result
            # Feedback may still be in flight when the result lands: give it a moment.
            deadline = time.monotonic() + 2.0
            while len(feedback) < 3 and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.1)
        finally:
            node.destroy_node()
            rclpy.shutdown()
    finally:
        stop(server)
    assert result.success
    assert result.message == "echo:pick the block"
    assert result.frame_count == 9 and result.adapter_id == "arm@2" and result.fps == 16.0
    assert feedback == [("denoise", 1, 3), ("denoise", 2, 3), ("denoise", 3, 3)]
