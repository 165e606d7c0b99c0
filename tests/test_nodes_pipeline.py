"""Camera -> capture_node -> generation_node -> preview subscriber, over DDS with the tiny model.

Both nodes run in one process through ``cosmos-ros bringup`` (the no-``launch`` route) with a
params file; a fake camera, the bag player and the clients run beside them.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from nodes_helpers import Client, camera_frame, start_node, tiny_model_dir, wait_until
from ros_helpers import start_python, stop, wait_for_line

pytest.importorskip("rclpy")
from action_msgs.msg import GoalStatus
from cosmos_ros_interfaces.action import CaptureAndPredict
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from cosmos_ros.media.ros_image import message_to_rgb
from cosmos_ros.media.video import read_video
from cosmos_ros.nodes.conversions import stamp_to_seconds
from cosmos_ros.nodes.qos import preview_qos, recorder_qos
from cosmos_ros.nodes.spin import action_client

STEPS = 3
FRAMES = 9
BRINGUP = r"""
import sys
from cosmos_ros.cli import main
sys.exit(main(["bringup", "--params", sys.argv[1], "--model-path", sys.argv[2]]))
"""
PARAMS = """
/**/generation_node:
  ros__parameters:
    device: cpu
    dtype: float32
    output_dir: "{out}"
    preview_loops: 1
/**/capture_node:
  ros__parameters:
    camera_topics: ["/test_cam/image_raw", "/odd_cam/image_raw", "/bag_cam/compressed", "/bag_cam"]
    max_frame_age: 0.5
    prompt_template: "The robot arm is performing a task. {{task}}"
    task: "The robot arm picks up the red cube."
    num_frames: {frames}
    steps: {steps}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = tiny_model_dir(tmp_path_factory)
    work = tmp_path_factory.mktemp("pipeline")
    params = work / "params.yaml"
    params.write_text(PARAMS.format(out=work / "out", frames=FRAMES, steps=STEPS))
    proc = start_python(BRINGUP, str(params), str(model))
    wait_for_line(proc, "generation_node active", timeout=90)
    client = Client("pipeline_client")
    action = action_client(client.node, CaptureAndPredict, "capture_and_predict")
    try:
        yield {"proc": proc, "client": client, "action": action, "work": work}
    finally:
        client.close()
        stop(proc)


def capture(setup, feedback=None, **fields):
    client = setup["client"]
    handle = client.send_goal(setup["action"], CaptureAndPredict.Goal(**fields), feedback)
    response = client.wait(handle.get_result_async(), 60)
    return response.status, response.result


def test_camera_frames_become_a_previewed_prediction(setup) -> None:
    client = setup["client"]
    # A recorder's deep reader history: a depth-1 viewer may legitimately skip frames under load.
    frames = client.collect(Image, "/generation_node/predicted_video", recorder_qos())
    side = client.collect(Image, "/generation_node/side_by_side", recorder_qos())
    jpeg = client.collect(CompressedImage, "/generation_node/predicted_video/compressed", recorder_qos())
    for topic in (
        "/generation_node/predicted_video",
        "/generation_node/side_by_side",
        "/generation_node/predicted_video/compressed",
    ):
        wait_until(lambda t=topic: client.node.count_publishers(t) >= 1, 10, f"discovery of {topic}")
    stop_camera = client.camera("/test_cam/image_raw", camera_frame(48, 64), encoding="bgr8")
    try:
        time.sleep(0.5)
        feedback: list = []
        status, result = capture(setup, feedback)
    finally:
        stop_camera()
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
    assert result.frame_count == FRAMES and result.fps == 16.0

    video, fps = read_video(result.video_path)  # the mp4 exists and decodes
    assert video.shape == (FRAMES, 64, 96, 3) and fps == pytest.approx(16.0)

    time.sleep(0.3)  # feedback may trail the result
    steps = [(f.step, f.total_steps) for f in feedback if f.stage == "denoise"]
    assert steps == [(i, STEPS) for i in range(1, STEPS + 1)]  # once per denoising step

    wait_until(lambda: len(frames) == FRAMES == len(side) == len(jpeg), 10, "every preview frame")
    # The compressed preview (what Foxglove / a remote RViz reads) shows the same frames, same stamps.
    assert {m.format for m in jpeg} == {"rgb8; jpeg compressed bgr8"}
    assert [m.header.stamp for m in jpeg] == [m.header.stamp for m in frames]
    for raw, small in zip(frames, jpeg, strict=True):
        decoded = message_to_rgb(small).astype(int)
        original = np.frombuffer(bytes(raw.data), np.uint8).reshape(64, 96, 3).astype(int)
        assert np.abs(decoded - original).mean() < 4 and len(small.data) < len(raw.data) / 4
    assert {(m.width, m.height, m.encoding, m.step) for m in frames} == {(96, 64, "rgb8", 96 * 3)}
    assert {(m.width, m.height) for m in side} == {(2 * 96, 64)}
    assert all(m.header.frame_id == "camera_optical" for m in frames)
    t0 = stamp_to_seconds(result.conditioning_stamp)
    stamps = [stamp_to_seconds(m.header.stamp) - t0 for m in frames]
    assert stamps == pytest.approx([i / 16.0 for i in range(FRAMES)], abs=1e-6)

    late = client.collect(Image, "/generation_node/predicted_video", preview_qos())  # a late RViz
    wait_until(lambda: len(late) == 1, 5, "the last frame for a late subscriber")
    assert late[0].header.stamp == frames[-1].header.stamp


def test_stale_frames_unsupported_encodings_and_unknown_cameras_are_refused(setup) -> None:
    client = setup["client"]
    stop_camera = client.camera("/test_cam/image_raw", camera_frame(48, 64))
    time.sleep(0.3)
    stop_camera()
    time.sleep(0.8)  # older than max_frame_age = 0.5 s
    status, stale = capture(setup)
    assert status == GoalStatus.STATUS_ABORTED
    assert "max_frame_age" in stale.message and "/test_cam/image_raw" in stale.message

    stop_odd = client.camera("/odd_cam/image_raw", camera_frame(48, 64), encoding="32FC3")
    try:
        time.sleep(0.4)
        status, odd = capture(setup, camera="/odd_cam/image_raw")
    finally:
        stop_odd()
    assert status == GoalStatus.STATUS_ABORTED
    assert "32FC3" in odd.message and "not supported" in odd.message and "rgb8" in odd.message

    stop_camera = client.camera("/test_cam/image_raw", camera_frame(48, 64))
    try:
        time.sleep(0.3)
        status, unknown = capture(setup, camera="/nope")
        assert "/nope" in unknown.message and "/test_cam/image_raw" in unknown.message
        trigger = client.node.create_client(Trigger, "/capture_node/trigger")
        assert trigger.wait_for_service(timeout_sec=5)
        fired = client.wait(trigger.call_async(Trigger.Request()), 60)  # answers once the video is made
        assert fired.success and fired.message.endswith(".mp4"), fired.message
        assert read_video(fired.message.split()[-1])[0].shape[0] == FRAMES
    finally:
        stop_camera()
    assert setup["proc"].poll() is None


def test_trigger_reports_a_refused_goal_with_the_generators_reason(setup) -> None:
    from lifecycle_msgs.msg import Transition

    client = setup["client"]
    transition = client.lifecycle("/generation_node")
    trigger = client.node.create_client(Trigger, "/capture_node/trigger")
    assert trigger.wait_for_service(timeout_sec=10)

    stop_camera = client.camera("/test_cam/image_raw", camera_frame(48, 64))
    try:
        time.sleep(0.3)
        assert transition(Transition.TRANSITION_DEACTIVATE)
        try:
            refused = client.wait(trigger.call_async(Trigger.Request()), 30)
        finally:
            assert transition(Transition.TRANSITION_ACTIVATE)
    finally:
        stop_camera()
    assert not refused.success and "rejected" in refused.message and "not active" in refused.message, (
        refused.message
    )


def test_a_truncated_camera_frame_is_flagged_when_it_arrives(setup) -> None:
    """The capture node names a camera sending frames shorter than step * height before any request."""
    from rclpy.qos import qos_profile_sensor_data

    client = setup["client"]
    pub = client.node.create_publisher(Image, "/odd_cam/image_raw", qos_profile_sensor_data)
    wait_until(lambda: pub.get_subscription_count() > 0, 10, "the capture node subscribing")
    short = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=bytes(64 * 3 * 47))
    timer = client.node.create_timer(0.05, lambda: pub.publish(short))
    try:
        found = wait_for_line(setup["proc"], "fewer than step * height", timeout=15)
    finally:
        client.node.destroy_timer(timer)
    line = next(line for line in found if "fewer than step * height" in line)
    assert "/odd_cam/image_raw" in line and "unusable frame" in line and str(48 * 64 * 3) in line, line


@pytest.mark.parametrize(
    ("fmt", "encoding", "topic"),
    [("mcap", "jpeg", "/bag_cam/compressed"), ("ros1", "bgr8", "/bag_cam")],
    ids=["ros2-mcap-jpeg", "ros1-raw"],
)
def test_bag_player_drives_the_capture_node(setup, tmp_path, fmt, encoding, topic) -> None:
    from cosmos_ros.bag_tools.synthetic import SynthSpec, write_synthetic_bag

    bag = write_synthetic_bag(
        tmp_path / ("demo.bag" if fmt == "ros1" else "demo"),
        SynthSpec(frames=30, fps=15.0, encoding=encoding, topics=("/bag_cam",), prompt=None),
        fmt,
    )
    assert setup["proc"].poll() is None
    time.sleep(3.0)  # let a possible trigger goal from the previous test finish
    player, _ = start_node(
        "bag_player",
        {"bag": str(bag), "loop": True, "wait_for_subscribers": 10.0},
        "playing",
        timeout=30,
        ros_args=["-r", f"/bag_cam:={topic}"],  # image_transport naming: /compressed is read as jpeg
    )
    try:
        time.sleep(0.5)
        status, result = capture(setup, camera=topic, num_frames=5)
    finally:
        out = stop(player)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message + out
    assert result.frame_count == 5
    assert "published" in out  # the player stops cleanly on Ctrl-C
