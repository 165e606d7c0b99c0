"""The nodes' ROS-free pieces and message conversions: frame buffer age rule, embodiments, images, QoS."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from nodes_helpers import camera_frame

pytest.importorskip("rclpy")
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from cosmos_ros.media.ros_image import rgb_to_raw
from cosmos_ros.nodes.conversions import (
    ArrivalCheck,
    UnsupportedImage,
    check_encoding,
    check_image,
    image_msg_to_rgb,
    rgb_to_image_msg,
    seconds_to_stamp,
    shifted_header,
    stamp_to_seconds,
)
from cosmos_ros.nodes.embodiment import build_prompt, load_embodiment
from cosmos_ros.nodes.frame_buffer import FrameBuffer, FrameRefused
from cosmos_ros.nodes.goal_admission import GoalAdmission
from cosmos_ros.nodes.qos import camera_qos, preview_qos, recorder_qos

EXACT = {"rgb8", "bgr8", "rgba8", "bgra8"}
LOSSY = {"mono8": 2, "mono16": 2, "yuv422": 40, "bayer_rggb8": 60, "bayer_bggr8": 60, "bayer_gbrg8": 60,
         "bayer_grbg8": 60}  # fmt: skip


@pytest.mark.parametrize("encoding", sorted(EXACT | set(LOSSY)))
def test_every_issue_encoding_decodes_to_rgb(encoding: str) -> None:
    rgb = cv2.GaussianBlur(camera_frame(32, 48), (7, 7), 0)  # smooth, so demosaicing can be judged
    data, step = rgb_to_raw(rgb, encoding)
    msg = Image(height=32, width=48, encoding=encoding, step=step, data=data)
    assert check_encoding(msg) is None
    out = image_msg_to_rgb(msg)
    assert out.shape == (32, 48, 3) and out.dtype == np.uint8
    if encoding in EXACT:
        np.testing.assert_array_equal(out, rgb)
    else:
        reference = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        target = reference if encoding.startswith("mono") else rgb
        assert np.abs(out[2:-2, 2:-2].astype(int) - target[2:-2, 2:-2].astype(int)).mean() < LOSSY[encoding]


@pytest.mark.parametrize("fmt", ["jpeg", "png", "rgb8; jpeg compressed bgr8"])
def test_compressed_images_decode(fmt: str) -> None:
    rgb = cv2.GaussianBlur(camera_frame(32, 48), (7, 7), 0)
    ext = ".png" if "png" in fmt else ".jpg"
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    out = image_msg_to_rgb(CompressedImage(format=fmt, data=buf.tobytes()))
    assert out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb.astype(int)).mean() < (0.01 if ext == ".png" else 12)


def test_unsupported_encodings_are_named_with_the_accepted_ones() -> None:
    msg = Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(16))
    reason = check_encoding(msg)
    assert reason and "32FC1" in reason and "bayer_rggb8" in reason
    with pytest.raises(UnsupportedImage, match="32FC1"):
        image_msg_to_rgb(msg)
    with pytest.raises(UnsupportedImage, match="webp"):
        image_msg_to_rgb(CompressedImage(format="webp", data=b"x"))
    with pytest.raises(UnsupportedImage, match="too short"):
        image_msg_to_rgb(Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(10)))


def test_frames_shorter_than_step_times_height_are_named_on_arrival_once() -> None:
    """Issue 19: the size is checked when a frame arrives, and a bad stream is reported once."""
    assert check_image(Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48))) is None
    short = Image(height=4, width=4, encoding="mono16", step=8, data=bytes(31))
    assert "fewer than step * height = 8 * 4 = 32" in check_image(short)
    narrow = Image(height=4, width=4, encoding="rgb8", step=6, data=bytes(48))
    assert "step 6 is too short for one row of 12 bytes" in check_image(narrow)
    assert "no data" in check_image(CompressedImage(format="jpeg", data=b""))
    with pytest.raises(UnsupportedImage, match="step \\* height"):
        image_msg_to_rgb(short)

    arrival = ArrivalCheck()
    good = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(48))
    assert arrival.check("/cam", short) is not None
    assert arrival.check("/cam", short) is None  # the same problem again: nothing new to log
    assert arrival.check("/cam", narrow) is not None  # a different problem is new
    assert arrival.check("/cam", good) is None and "/cam" not in arrival.problems
    assert arrival.check("/cam", short) is not None  # back after good frames: logged again


def test_goal_admission_rejects_while_inactive_or_busy_as_the_policy_says() -> None:
    admission = GoalAdmission()
    assert "state: inactive" in admission.request("not active (state: inactive)", "queue", 3)
    assert admission.request(None, "reject", 0) is None  # idle: accepted, a place is reserved
    assert "busy_policy=reject" in admission.request(None, "reject", 0)  # the reserved place counts
    assert admission.request(None, "queue", 1) is None
    assert "1 goal(s) wait" in admission.request(None, "queue", 1)
    assert admission.request(None, "preempt", 0) is None
    assert "1 goal(s) wait" in admission.last_rejection and admission.last_rejection_time > 0


def test_rgb_message_roundtrip_and_stamps() -> None:
    rgb = camera_frame(8, 12)
    header = Header(stamp=seconds_to_stamp(1700000000.25), frame_id="cam")
    msg = rgb_to_image_msg(rgb, header)
    assert (msg.encoding, msg.step, msg.header.frame_id) == ("rgb8", 36, "cam")
    np.testing.assert_array_equal(image_msg_to_rgb(msg), rgb)
    later = shifted_header(header, 0.0625 * 3)
    assert stamp_to_seconds(later.stamp) - stamp_to_seconds(header.stamp) == pytest.approx(0.1875, abs=1e-9)
    assert later.frame_id == "cam"


def test_frame_buffer_keeps_newest_and_refuses_stale_or_missing_frames() -> None:
    buffer = FrameBuffer("/cam", capacity=3)
    with pytest.raises(FrameRefused, match="no frame received on /cam"):
        buffer.newest(1, now=10.0, max_age=1.0)
    for i in range(5):
        buffer.push(f"m{i}", header_stamp=100.0 + i, receive_time=10.0 + i)
    assert len(buffer) == 3 and buffer.received == 5
    assert [f.msg for f in buffer.newest(2, now=14.5, max_age=1.0)] == ["m3", "m4"]
    with pytest.raises(FrameRefused, match=r"2\.00 s old .*max_frame_age=1 s"):
        buffer.newest(1, now=16.0, max_age=1.0)
    assert buffer.newest(1, now=1000.0, max_age=0)[0].msg == "m4"  # 0 = no limit
    with pytest.raises(FrameRefused, match="header time"):
        buffer.newest(1, now=106.0, max_age=1.0, age_source="header")
    with pytest.raises(FrameRefused, match="only 3 buffered"):
        buffer.newest(4, now=14.5, max_age=1.0)


def test_embodiment_file_and_prompt_template(tmp_path) -> None:
    path = tmp_path / "arm.yaml"
    path.write_text("adapter: arm@approved\ncamera_topic: /wrist/image_raw\nprompt_template: 'Arm. {task}'\n"
                    "resolution: [432, 768]\nnum_frames: 93\n")  # fmt: skip
    emb = load_embodiment(path)
    assert (emb.adapter, emb.camera_topic, emb.resolution, emb.num_frames, emb.name) == (
        "arm@approved", "/wrist/image_raw", (432, 768), 93, "arm")  # fmt: skip
    assert build_prompt(emb.prompt_template, "pick the cube") == "Arm. pick the cube"
    assert build_prompt("A fixed prompt", "") == "A fixed prompt"
    assert build_prompt("A fixed prompt", "override") == "override"
    assert build_prompt("", "") == ""
    path.write_text("resolution: [432]\n")
    with pytest.raises(ValueError, match=r"arm\.yaml: resolution"):
        load_embodiment(path)
    path.write_text("num_frames: 90\n")
    with pytest.raises(ValueError, match="4k\\+1"):
        load_embodiment(path)


def test_qos_profiles() -> None:
    preview = preview_qos()
    assert preview.reliability == ReliabilityPolicy.RELIABLE
    assert preview.durability == DurabilityPolicy.TRANSIENT_LOCAL and preview.depth == 1
    assert camera_qos().reliability == ReliabilityPolicy.BEST_EFFORT
    recorder = recorder_qos(50)  # matches the preview publishers, keeps a deep reader history
    assert (recorder.reliability, recorder.durability) == (preview.reliability, preview.durability)
    assert recorder.depth == 50
    assert camera_qos("reliable", 3).reliability == ReliabilityPolicy.RELIABLE
    with pytest.raises(ValueError, match="sensor_data"):
        camera_qos("fast")


def test_an_explicit_camera_topic_wins_over_the_embodiment(tmp_path) -> None:
    rclpy = pytest.importorskip("rclpy")
    from rclpy.parameter import Parameter

    from cosmos_ros.nodes.capture_node import CaptureNode

    embodiment = tmp_path / "arm.yaml"
    embodiment.write_text("camera_topic: /wrist/image_raw\n")
    context = rclpy.Context()
    rclpy.init(context=context)

    def topics(**params: object) -> list[str]:
        overrides = [Parameter(name, value=value) for name, value in params.items()]
        node = CaptureNode(context=context, parameter_overrides=overrides)
        try:
            return sorted(node.buffers)
        finally:
            node.destroy_node()

    try:
        assert topics() == ["/camera/image_raw"]
        assert topics(embodiment_file=str(embodiment)) == ["/wrist/image_raw"]
        # The package default topic given explicitly (what `bringup --camera-topic` sets) still wins.
        explicit = topics(embodiment_file=str(embodiment), camera_topic="/camera/image_raw")
        assert explicit == ["/camera/image_raw"]
        assert topics(embodiment_file=str(embodiment), camera_topics=["/a", "/b"]) == ["/a", "/b"]
    finally:
        rclpy.shutdown(context=context)


FLAKY_SERVICE = r"""
from rclpy.node import Node
from std_srvs.srv import Trigger
from cosmos_ros.nodes.spin import run_nodes

class Flaky(Node):
    def __init__(self):
        super().__init__("flaky")
        self.calls = 0
        self.create_service(Trigger, "~/call", self.on_call)

    def on_call(self, request, response):
        self.calls += 1
        if self.calls == 1:
            raise ValueError("the first call fails")
        response.success, response.message = True, f"call {self.calls}"
        return response

print("spinning", flush=True)
run_nodes(lambda: [Flaky()], num_threads=2)
"""


def test_a_raising_callback_is_logged_and_the_node_keeps_serving() -> None:
    from nodes_helpers import Client
    from ros_helpers import start_python, stop, wait_for_line
    from std_srvs.srv import Trigger

    proc = start_python(FLAKY_SERVICE)
    client = Client("flaky_client")
    try:
        wait_for_line(proc, "spinning")
        service = client.node.create_client(Trigger, "/flaky/call")
        assert service.wait_for_service(timeout_sec=10)
        with pytest.raises(AssertionError, match="no answer"):
            client.wait(service.call_async(Trigger.Request()), 3)
        answer = client.wait(service.call_async(Trigger.Request()), 10)
        assert answer.success and answer.message == "call 2"
        assert proc.poll() is None
    finally:
        client.close()
        out = stop(proc)
    assert "a callback failed; the nodes keep running" in out and "the first call fails" in out


def test_an_action_client_is_whole_when_a_spinning_executor_first_sees_it() -> None:
    """rclpy registers an ActionClient with its node before creating its lock; an executor that
    counts the node's entities at that moment raised AttributeError and stopped spinning (a CI run
    lost every answer of a node test that way). Our helper's client is whole when registered
    (a plain rclpy ActionClient is not: this check fails with it)."""
    import rclpy
    from cosmos_ros_interfaces.action import PredictVideo
    from rclpy.context import Context

    from cosmos_ros.nodes.spin import action_client

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("lock_probe", context=context)
    seen: list[bool] = []
    register = node.add_waitable
    node.add_waitable = lambda w: (seen.append(hasattr(w, "_lock")), register(w))  # type: ignore[method-assign]
    try:
        action_client(node, PredictVideo, "probe")
    finally:
        node.destroy_node()
        context.try_shutdown()
    assert seen == [True]
