"""generation_node driven the way a lifecycle manager drives it, over DDS with the tiny model.

One node (``autostart: false``) in its own process; every transition goes through its
``change_state`` service while goals run. The node's whole log is kept: no test may leave a
traceback in it. Covers issue 19's node cases: a deactivation ends running goals ABORTED with the
reason, activation beside the ``/diagnostics`` timer is clean, goals the node cannot serve are
REJECTED (with the reason in the log and ``/diagnostics``), ``busy_policy`` reject/queue/preempt,
and truncated camera frames are flagged as they arrive.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from typing import Any

import numpy as np
import pytest
from nodes_helpers import NODE_SCRIPT, Client, camera_frame, tiny_model_dir, wait_until
from ros_helpers import set_param, start_python

pytest.importorskip("rclpy")
from action_msgs.msg import GoalStatus
from cosmos_ros_interfaces.action import PredictVideo
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import GetState
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from cosmos_ros.nodes.conversions import rgb_to_image_msg
from cosmos_ros.nodes.spin import action_client

NS = "/lc"
NODE = f"{NS}/generation_node"
CAMERA = f"{NS}/lc_cam/image_raw"
PROMPT = "The robot arm picks up the red cube"
LONG_STEPS = 400  # a goal that runs until something stops it (a step takes a few ms)


class NodeLog:
    """Every line the node process prints, read by a thread so the pipe never fills."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._proc = proc
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        """Ctrl-C the node (it shuts down cleanly) and read what it printed on the way out."""
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._thread.join(5)

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 20.0) -> str:
        wait_until(lambda: any(needle in line for line in self.lines), timeout, f"log line with {needle!r}")
        return next(line for line in self.lines if needle in line)

    def assert_clean(self) -> None:
        text = self.text()
        for bad in ("Traceback", "AttributeError", "RCLError", "Error raised in execute callback"):
            assert bad not in text, f"{bad!r} in the node's log:\n{text[-6000:]}"


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    model = tiny_model_dir(tmp_path_factory)
    work = tmp_path_factory.mktemp("lifecycle")
    params = {
        "model_path": str(model),
        "output_dir": str(work / "out"),
        "device": "cpu",
        "dtype": "float32",
        "warmup": False,
        "autostart": False,
        "preview_loops": 0,
        "camera_topic": "lc_cam/image_raw",
        "diagnostics_period": 0.02,  # often enough to run while activate imports torch
    }
    args = ["-r", f"__ns:={NS}"]
    for name, value in params.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["-p", f"{name}:={text}"]
    # Ready once its action server is discovered (it waits unconfigured for change_state).
    proc = start_python(NODE_SCRIPT.replace("{module}", "generation_node"), *args)
    log = NodeLog(proc)
    client = Client("lifecycle_test_client")
    action = action_client(client.node, PredictVideo, f"{NS}/predict_video")
    assert action.wait_for_server(timeout_sec=60), "action server not discovered"
    try:
        yield {"proc": proc, "log": log, "client": client, "action": action}
    finally:
        client.close()
        log.stop()
        log.assert_clean()


# ---------------------------------------------------------------- helpers
def goal(steps: int = 2, seed: int = 1) -> PredictVideo.Goal:
    frame = rgb_to_image_msg(camera_frame(), Header(frame_id="camera_optical"))
    return PredictVideo.Goal(prompt=PROMPT, conditioning_frames=[frame], num_frames=5, steps=steps, seed=seed)


def send(node: dict[str, Any], g: PredictVideo.Goal, feedback: list | None = None) -> Any:
    """Send a goal; returns its client handle, accepted or not."""
    callback = (lambda m: feedback.append(m.feedback)) if feedback is not None else None
    return node["client"].wait(node["action"].send_goal_async(g, feedback_callback=callback), 30)


def result_of(node: dict[str, Any], handle: Any, timeout: float = 60.0) -> tuple[int, Any]:
    response = node["client"].wait(handle.get_result_async(), timeout)
    return response.status, response.result


def start_long_goal(node: dict[str, Any], seed: int = 1) -> tuple[Any, list]:
    """A goal that is denoising when this returns."""
    feedback: list = []
    handle = send(node, goal(steps=LONG_STEPS, seed=seed), feedback)
    assert handle.accepted
    wait_until(lambda: any(f.stage == "denoise" for f in feedback), 30, "the long goal denoising")
    return handle, feedback


def transition(node: dict[str, Any], tid: int) -> bool:
    if "transition" not in node:
        node["transition"] = node["client"].lifecycle(NODE)
    return node["transition"](tid)


def state(node: dict[str, Any]) -> str:
    client = node["client"]
    get = client.node.create_client(GetState, f"{NODE}/get_state")
    assert get.wait_for_service(timeout_sec=10)
    return client.wait(get.call_async(GetState.Request()), 10).current_state.label


def ensure_active(node: dict[str, Any]) -> None:
    """Bring the node to active through change_state, whatever state an earlier test left."""
    label = state(node)
    if label == "unconfigured":
        assert transition(node, Transition.TRANSITION_CONFIGURE)
        label = state(node)
    if label == "inactive":
        assert transition(node, Transition.TRANSITION_ACTIVATE)
    assert state(node) == "active"


def diagnostics(node: dict[str, Any], predicate=lambda values: True, timeout: float = 10.0) -> dict[str, str]:
    """The first /diagnostics values of this node that satisfy ``predicate``."""
    received = node["client"].collect(DiagnosticArray, "/diagnostics", 50)
    found: list[dict[str, str]] = []

    def match() -> bool:
        for msg in list(received):
            for status in msg.status:
                values = {kv.key: kv.value for kv in status.values}
                if NODE in status.name and predicate(values):
                    found.append({**values, "_message": status.message, "_level": str(status.level)})
                    return True
        return False

    wait_until(match, timeout, "matching diagnostics")
    return found[0]


def rejected_with(node: dict[str, Any], g: PredictVideo.Goal, words: list[str]) -> str:
    """Send ``g``, expect a REJECT, and return the log line that gives the reason."""
    count = len([line for line in node["log"].lines if "goal rejected" in line])
    handle = send(node, g)
    assert not handle.accepted, "the goal was accepted"
    wait_until(
        lambda: len([line for line in node["log"].lines if "goal rejected" in line]) > count, 10, "log"
    )
    line = [line for line in node["log"].lines if "goal rejected" in line][-1]
    assert all(word in line for word in words), line
    return line


# ---------------------------------------------------------------- tests
def test_activate_through_change_state_keeps_diagnostics_clean(node) -> None:
    """A lifecycle manager's activate imports torch while the 20 ms /diagnostics timer runs."""
    assert state(node) == "unconfigured"
    ensure_active(node)
    values = diagnostics(node, lambda v: v.get("model_loaded") == "true")
    assert values["lifecycle_state"] == "active" and "gpu_memory_allocated_mib" in values
    time.sleep(0.3)
    node["log"].assert_clean()


def test_a_goal_while_busy_is_rejected_and_the_reason_is_logged_and_diagnosed(node) -> None:
    ensure_active(node)
    long_handle, feedback = start_long_goal(node)
    try:
        rejected_with(node, goal(seed=2), ["busy", "busy_policy=reject"])
        values = diagnostics(node, lambda v: "busy_policy=reject" in v.get("last_rejection", ""))
        assert values["busy_policy"] == "reject" and int(values["goals_rejected"]) >= 1
    finally:
        node["client"].wait(long_handle.cancel_goal_async(), 10)
    status, result = result_of(node, long_handle)
    assert status == GoalStatus.STATUS_CANCELED and "cancelled: requested during step" in result.message
    assert not any(f.stage == "queued" for f in feedback)


def test_busy_policy_queue_serves_in_turn_and_rejects_beyond_max_queued_goals(node) -> None:
    ensure_active(node)
    assert set_param(node, "busy_policy", "queue", node=NODE).successful
    assert set_param(node, "max_queued_goals", 1, node=NODE).successful
    try:
        long_handle, _ = start_long_goal(node)
        queued_fb: list = []
        queued = send(node, goal(seed=3), queued_fb)
        assert queued.accepted
        wait_until(lambda: any(f.stage == "queued" for f in queued_fb), 10, "queued feedback")
        rejected_with(node, goal(seed=4), ["busy", "1 goal(s) wait", "max_queued_goals=1"])
        time.sleep(0.3)
        node["client"].wait(long_handle.cancel_goal_async(), 10)
        assert result_of(node, long_handle)[0] == GoalStatus.STATUS_CANCELED
        status, result = result_of(node, queued)
        assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
        assert result.queue_seconds > 0.3
    finally:
        assert set_param(node, "busy_policy", "reject", node=NODE).successful
    refused = set_param(node, "busy_policy", "sometimes", node=NODE)
    assert not refused.successful and "reject, queue, preempt" in refused.reason


def test_busy_policy_preempt_aborts_the_running_goal_with_the_reason(node) -> None:
    ensure_active(node)
    assert set_param(node, "busy_policy", "preempt", node=NODE).successful
    try:
        long_handle, _ = start_long_goal(node)
        newer = send(node, goal(seed=5))
        assert newer.accepted
        status, old = result_of(node, long_handle)
        assert status == GoalStatus.STATUS_ABORTED and not old.success
        short_id = bytes(newer.goal_id.uuid).hex()[:8]
        assert f"preempted by goal {short_id}" in old.message and "stopped after step" in old.message
        status, new = result_of(node, newer)
        assert status == GoalStatus.STATUS_SUCCEEDED and new.success, new.message
    finally:
        assert set_param(node, "busy_policy", "reject", node=NODE).successful


def test_deactivate_aborts_the_running_goal_with_the_reason(node) -> None:
    ensure_active(node)
    long_handle, _ = start_long_goal(node)
    assert transition(node, Transition.TRANSITION_DEACTIVATE)
    status, result = result_of(node, long_handle, 30)
    assert status == GoalStatus.STATUS_ABORTED and not result.success
    assert "deactivating" in result.message and "stopped after step" in result.message, result.message
    node["log"].assert_clean()
    assert transition(node, Transition.TRANSITION_ACTIVATE)


def test_lifecycle_manager_cycle_while_goals_run(node) -> None:
    """configure/activate/deactivate/cleanup through change_state with goals running and waiting."""
    ensure_active(node)
    running, _ = start_long_goal(node, seed=6)
    assert transition(node, Transition.TRANSITION_DEACTIVATE)
    status, result = result_of(node, running, 30)
    assert status == GoalStatus.STATUS_ABORTED and "deactivating" in result.message, result.message
    rejected_with(node, goal(), ["not active (state: inactive)"])

    assert transition(node, Transition.TRANSITION_CLEANUP)
    assert state(node) == "unconfigured"
    rejected_with(node, goal(), ["not active (state: unconfigured)"])
    values = diagnostics(node, lambda v: "unconfigured" in v.get("last_rejection", ""))
    assert values["model_loaded"] == "false"

    assert transition(node, Transition.TRANSITION_CONFIGURE)
    assert state(node) == "inactive"
    rejected_with(node, goal(), ["not active (state: inactive)"])
    assert transition(node, Transition.TRANSITION_ACTIVATE)

    # Again with a goal waiting behind the running one: both end with the reason.
    assert set_param(node, "busy_policy", "queue", node=NODE).successful
    try:
        running, _ = start_long_goal(node, seed=7)
        waiting = send(node, goal(seed=8))
        assert waiting.accepted
        assert transition(node, Transition.TRANSITION_DEACTIVATE)
        for handle in (running, waiting):
            status, result = result_of(node, handle, 30)
            assert status == GoalStatus.STATUS_ABORTED and "deactivating" in result.message, result.message
        assert transition(node, Transition.TRANSITION_ACTIVATE)
        status, result = result_of(node, send(node, goal(seed=9)))
        assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
    finally:
        assert set_param(node, "busy_policy", "reject", node=NODE).successful
    assert node["proc"].poll() is None
    node["log"].assert_clean()


def test_a_truncated_camera_frame_is_flagged_when_it_arrives(node) -> None:
    """No goal asks for the frame: the node says at once that the camera sends unusable data."""
    client = node["client"]
    pub = client.node.create_publisher(Image, CAMERA, qos_profile_sensor_data)
    frame = camera_frame(48, 64)
    data = frame.tobytes()[: -64 * 3]  # one row short of step * height
    wait_until(lambda: pub.get_subscription_count() > 0, 10, "the node subscribing to the camera")
    stop_at = time.monotonic() + 10
    while time.monotonic() < stop_at and not any("unusable frame" in line for line in node["log"].lines):
        pub.publish(Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=data))
        time.sleep(0.05)
    line = node["log"].wait_for("unusable frame", timeout=1)
    assert CAMERA in line and "fewer than step * height" in line and str(48 * 64 * 3) in line, line
    values = diagnostics(node, lambda v: "step * height" in v.get("camera_frames", ""))
    assert values["camera_topic"] == CAMERA
    assert (
        np.count_nonzero(["unusable frame" in line for line in node["log"].lines]) == 1
    )  # once, not per frame
