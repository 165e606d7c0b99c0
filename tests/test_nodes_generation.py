"""generation_node over DDS with the tiny model: busy goals, cancel, adapter switching, registry, errors.

The node runs in its own process (its real entry point); this process is the client.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from nodes_helpers import (
    Client,
    camera_frame,
    make_misfit_adapter,
    make_tiny_adapter,
    start_node,
    tiny_model_dir,
    wait_until,
)
from ros_helpers import set_param, stop, wait_for_line

pytest.importorskip("rclpy")
from cosmos_ros_interfaces.action import PredictVideo
from cosmos_ros_interfaces.srv import ListAdapters
from rcl_interfaces.srv import GetParameters
from std_msgs.msg import Header

from cosmos_ros.media.video import read_video
from cosmos_ros.nodes.conversions import rgb_to_image_msg
from cosmos_ros.nodes.spin import action_client

PROMPT = "The robot arm picks up the red cube"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    model = tiny_model_dir(tmp_path_factory)
    work = tmp_path_factory.mktemp("gen")
    adapter = make_tiny_adapter(model, work / "arm_adapter")
    proc, _ = start_node(
        "generation_node",
        {"model_path": str(model), "output_dir": str(work / "out"), "device": "cpu", "dtype": "float32"},
        "generation_node active",
        timeout=90,
    )
    client = Client("gen_test_client")
    action = action_client(client.node, PredictVideo, "predict_video")
    try:
        yield {
            "proc": proc,
            "client": client,
            "action": action,
            "adapter": adapter,
            "work": work,
            "model": model,
        }
    finally:
        client.close()
        stop(proc)


def goal(seed: int = 1, steps: int = 2, **fields) -> PredictVideo.Goal:
    frame = rgb_to_image_msg(camera_frame(), Header(frame_id="camera_optical"))
    return PredictVideo.Goal(
        prompt=fields.pop("prompt", PROMPT),
        conditioning_frames=[frame],
        num_frames=fields.pop("num_frames", 5),
        steps=steps,
        seed=seed,
        **fields,
    )


def rejected(setup, g: PredictVideo.Goal, reason: str, proc=None) -> None:
    """Send ``g`` and expect a REJECT; the node's log gives ``reason``."""
    action = setup["action"]
    assert action.wait_for_server(timeout_sec=30)
    handle = setup["client"].wait(action.send_goal_async(g), 30)
    assert handle is not None and not handle.accepted
    lines = wait_for_line(proc or setup["proc"], "goal rejected", timeout=10)
    line = next(line for line in reversed(lines) if "goal rejected" in line)
    assert reason in line, line


def run(setup, g: PredictVideo.Goal, feedback=None, timeout: float = 60.0):
    client = setup["client"]
    handle = client.send_goal(setup["action"], g, feedback)
    response = client.wait(handle.get_result_async(), timeout)
    return response.status, response.result


def set_adapter(setup, value: str, node: str = "/generation_node"):
    return set_param(setup, "adapter", value, node, timeout=30)  # a switch may load weights


def get_adapter(setup, node: str = "/generation_node") -> str:
    client = setup["client"]
    srv = client.node.create_client(GetParameters, f"{node}/get_parameters")
    assert srv.wait_for_service(timeout_sec=10)
    return client.wait(srv.call_async(GetParameters.Request(names=["adapter"])), 10).values[0].string_value


def test_busy_goal_is_rejected_with_a_logged_reason_and_cancel_stops_within_a_step(setup) -> None:
    from action_msgs.msg import GoalStatus

    client = setup["client"]
    feedback: list = []
    long_handle = client.send_goal(setup["action"], goal(steps=40), feedback)
    wait_until(lambda: any(f.stage == "denoise" for f in feedback), 30, "first denoising step")

    rejected(setup, goal(seed=2), "busy_policy=reject")  # while the first one runs

    # The node keeps answering services meanwhile.
    srv = client.node.create_client(ListAdapters, "/generation_node/list_adapters")
    assert srv.wait_for_service(timeout_sec=5)
    started = time.monotonic()
    assert client.wait(srv.call_async(ListAdapters.Request()), 5).success
    assert time.monotonic() - started < 2.0

    step_at_cancel = max(f.step for f in feedback if f.stage == "denoise")
    client.wait(long_handle.cancel_goal_async(), 10)
    response = client.wait(long_handle.get_result_async(), 30)
    time.sleep(0.3)  # feedback still in flight
    last_step = max(f.step for f in feedback if f.stage == "denoise")
    assert response.status == GoalStatus.STATUS_CANCELED
    assert not response.result.success
    match = re.search(r"requested during step (\d+), stopped after step (\d+) of 40", response.result.message)
    assert match, response.result.message
    running, stopped = int(match[1]), int(match[2])
    assert running - 1 <= stopped <= running  # no step started after the cancel arrived
    assert step_at_cancel <= stopped == last_step < 40

    status, result = run(setup, goal(seed=3))  # the node serves the next goal
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message


def test_feedback_walks_through_every_stage_in_order(setup) -> None:
    feedback: list = []
    _status, result = run(setup, goal(steps=2), feedback)
    assert result.success, result.message
    wait_until(lambda: any(f.stage == "publish" for f in feedback), 10, "publish feedback")
    stages = [f.stage for f in feedback]
    firsts = [s for i, s in enumerate(stages) if s not in stages[:i]]
    assert firsts == ["encode", "denoise", "decode", "save", "publish"], stages
    assert [(f.step, f.total_steps) for f in feedback if f.stage == "denoise"] == [(1, 2), (2, 2)]
    # save/publish report the whole run's step count, not the one-step stages before them
    assert all((f.step, f.total_steps) == (2, 2) for f in feedback if f.stage in ("save", "publish"))
    assert [f.elapsed for f in feedback] == sorted(f.elapsed for f in feedback)


def test_adapter_parameter_switches_next_prediction_and_unknown_is_refused(setup) -> None:
    _, base = run(setup, goal(seed=5))
    assert base.success and base.adapter_id == ""

    ok = set_adapter(setup, str(setup["adapter"]))
    assert ok.successful, ok.reason
    _, adapted = run(setup, goal(seed=5))
    assert adapted.success and adapted.adapter_id == "arm_adapter"
    base_frames, _ = read_video(base.video_path)
    adapted_frames, _ = read_video(adapted.video_path)
    assert base_frames.shape == adapted_frames.shape
    assert np.abs(base_frames.astype(int) - adapted_frames.astype(int)).mean() > 0.1  # the adapter acts

    refused = set_adapter(setup, "no_such_adapter@3")
    assert not refused.successful and "no_such_adapter" in refused.reason
    assert get_adapter(setup) == str(setup["adapter"])
    # Right base fingerprint in its metadata, wrong layer sizes: refused at set time, not at the next goal.
    misfit = make_misfit_adapter(setup["model"], setup["work"] / "misfit_adapter")
    refused = set_adapter(setup, str(misfit))
    assert not refused.successful and "does not fit" in refused.reason and "shape" in refused.reason
    assert get_adapter(setup) == str(setup["adapter"])
    _, again = run(setup, goal(seed=5))
    assert again.adapter_id == "arm_adapter"

    client = setup["client"]
    srv = client.node.create_client(ListAdapters, "/generation_node/list_adapters")
    listing = client.wait(srv.call_async(ListAdapters.Request()), 10)
    assert listing.active_adapter == "arm_adapter"
    assert [(a.adapter_id, a.loaded, a.active) for a in listing.adapters] == [("arm_adapter", True, True)]

    assert set_adapter(setup, "none").successful
    _, back = run(setup, goal(seed=5))
    assert back.adapter_id == ""
    np.testing.assert_array_equal(read_video(back.video_path)[0], base_frames)


def test_bad_requests_fail_with_a_clear_message_and_the_node_lives_on(setup) -> None:
    _, empty = run(setup, goal(prompt=""))
    assert not empty.success and "empty prompt" in empty.message

    bad = goal()
    bad.conditioning_frames[0].encoding = "32FC1"
    _, unsupported = run(setup, bad)
    assert not unsupported.success and "32FC1" in unsupported.message and "rgb8" in unsupported.message

    _, no_frames = run(setup, PredictVideo.Goal(prompt=PROMPT, num_frames=5, steps=1))
    assert not no_frames.success and "conditioning_frames" in no_frames.message

    _, odd = run(setup, goal(num_frames=6))
    assert not odd.success and "4k+1" in odd.message

    _, bad_adapter = run(setup, goal(adapter="/nonexistent/adapter"))
    assert not bad_adapter.success and "/nonexistent/adapter" in bad_adapter.message

    refused = set_param(setup, "fps", -1.0)
    assert not refused.successful and "fps must be >= 0" in refused.reason

    assert setup["proc"].poll() is None
    assert set_param(setup, "fps", 8.0).successful
    try:
        _, fine = run(setup, goal())
    finally:
        assert set_param(setup, "fps", 0.0).successful
    assert fine.success, fine.message
    assert fine.fps == 8.0 and read_video(fine.video_path)[1] == pytest.approx(8.0)


def test_diagnostics_report_model_adapter_latency(setup) -> None:
    from diagnostic_msgs.msg import DiagnosticArray

    client = setup["client"]
    received = client.collect(DiagnosticArray, "/diagnostics", 10)
    wait_until(
        lambda: any("generation_node" in s.name for m in received for s in m.status), 10, "diagnostics"
    )
    status = next(s for m in received for s in m.status if "generation_node" in s.name)
    values = {kv.key: kv.value for kv in status.values}
    assert values["model_loaded"] == "true" and values["lifecycle_state"] == "active"
    assert "active_adapter" in values and "gpu_memory_allocated_mib" in values
    assert float(values["last_latency_s"]) > 0


def test_missing_model_path_fails_configure_and_the_process_stays_up(tmp_path) -> None:
    missing = tmp_path / "no_model_here"
    proc, lines = start_node(
        "generation_node",
        {"model_path": str(missing), "output_dir": str(tmp_path / "out")},
        "configure failed",
        timeout=60,
        ros_args=["-r", "__ns:=/broken"],
    )
    try:
        assert any(str(missing) in line and "does not exist" in line for line in lines)
        time.sleep(0.5)
        assert proc.poll() is None
        client = Client("missing_model_client")
        try:
            action = action_client(client.node, PredictVideo, "/broken/predict_video")
            broken = {"client": client, "action": action}
            rejected(broken, goal(), "not active (state: unconfigured)", proc)
        finally:
            client.close()
        assert proc.poll() is None
    finally:
        stop(proc)


def test_bounded_queue_serves_goals_in_turn(setup) -> None:
    from action_msgs.msg import GoalStatus

    client = setup["client"]
    assert set_param(setup, "busy_policy", "queue").successful
    assert set_param(setup, "max_queued_goals", 1).successful
    try:
        first_fb: list = []
        queued_fb: list = []
        first = client.send_goal(setup["action"], goal(steps=12), first_fb)
        wait_until(lambda: any(f.stage == "denoise" for f in first_fb), 30, "first goal running")
        queued = client.send_goal(setup["action"], goal(seed=4), queued_fb)
        wait_until(lambda: any(f.stage == "queued" for f in queued_fb), 10, "queued feedback")
        rejected(setup, goal(seed=6), "1 goal(s) wait (busy_policy=queue, max_queued_goals=1)")
        done_first = client.wait(first.get_result_async(), 60)
        done_queued = client.wait(queued.get_result_async(), 60)
        assert done_first.result.success and done_queued.result.success
        assert done_queued.result.queue_seconds > 0.1
        assert done_first.status == GoalStatus.STATUS_SUCCEEDED
    finally:
        assert set_param(setup, "busy_policy", "reject").successful


def test_deactivate_frees_the_model_and_activate_serves_again(setup) -> None:
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import GetState

    client = setup["client"]
    transition = client.lifecycle("/generation_node")
    get = client.node.create_client(GetState, "/generation_node/get_state")
    assert get.wait_for_service(timeout_sec=10)

    assert transition(Transition.TRANSITION_DEACTIVATE)
    assert client.wait(get.call_async(GetState.Request()), 10).current_state.label == "inactive"
    rejected(setup, goal(), "not active (state: inactive)")
    assert transition(Transition.TRANSITION_ACTIVATE)
    _, served = run(setup, goal())
    assert served.success, served.message


def test_registry_node_refuses_drafts_lists_versions_and_rechecks_the_artifact(setup, tmp_path) -> None:
    """With registry_path: only approved versions load; a blob swapped after the check is still refused."""
    from registry_helpers import flip_one_byte

    from cosmos_ros.registry import open_registry

    model = setup["model"]
    with open_registry(tmp_path / "registry") as registry:

        def add(name: str, seed: int, approve: bool):
            record = registry.register(make_tiny_adapter(model, tmp_path / f"{name}{seed}", seed=seed), name)
            if approve:
                registry.promote(record.adapter_id, note="ready")
                record = registry.approve(record.adapter_id, note="test", force_reason="node test")
            return record

        add("arm", 1, approve=True)
        add("arm", 2, approve=False)  # arm@2 stays a draft
        grip_blob = registry.artifact_path(add("grip", 3, approve=True))
    proc, _ = start_node(
        "generation_node",
        {"model_path": str(model), "output_dir": str(tmp_path / "out"), "device": "cpu", "dtype": "float32",
         "registry_path": str(tmp_path / "registry"), "warmup": False},
        "generation_node active",
        timeout=90,
        ros_args=["-r", "__ns:=/reg"],
    )  # fmt: skip
    client = setup["client"]
    reg = {**setup, "action": action_client(client.node, PredictVideo, "/reg/predict_video")}
    node = "/reg/generation_node"
    try:
        draft = set_adapter(reg, "arm@2", node)
        assert not draft.successful and "draft" in draft.reason and "not approved" in draft.reason
        assert get_adapter(reg, node) == ""
        path = set_adapter(reg, str(setup["adapter"]), node)  # plain folders are refused beside a registry
        assert not path.successful and "registry only" in path.reason

        assert set_adapter(reg, "arm@approved", node).successful
        _, adapted = run(reg, goal(seed=5))
        assert adapted.success and adapted.adapter_id == "arm@1", adapted.message

        srv = client.node.create_client(ListAdapters, f"{node}/list_adapters")
        assert srv.wait_for_service(timeout_sec=10)
        listing = client.wait(srv.call_async(ListAdapters.Request()), 10)
        assert listing.success and listing.active_adapter == "arm@1"
        assert sorted((a.name, a.version, a.status, a.loaded, a.active) for a in listing.adapters) == [
            ("arm", 1, "approved", True, True),
            ("arm", 2, "draft", False, False),
            ("grip", 1, "approved", False, False),
        ]

        # grip@approved passes every check at set time; its blob is then swapped before the goal loads it.
        assert set_adapter(reg, "grip@approved", node).successful
        flip_one_byte(grip_blob)
        _, swapped = run(reg, goal(seed=5))
        assert not swapped.success and "changed after it was verified" in swapped.message, swapped.message
        assert proc.poll() is None
    finally:
        stop(proc)
