"""generation_node owning a group of 2 processes under torchrun (gloo, CPU, tiny model): issue 22.

Rank 0 serves the action; rank 1 runs no node and follows its runtime calls (cosmos_ros/nodes/
gpu_group.py). One goal over DDS must give the frames of a single-process prediction of the same
request, and rank 1's log must show it did its share: its self-attention saw half of the tokens.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from nodes_helpers import Client, camera_frame, make_tiny_adapter, tiny_model_dir, wait_until
from ros_helpers import stop, wait_for_line

pytest.importorskip("rclpy")
from cosmos_ros_interfaces.action import PredictVideo
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from cosmos_ros.nodes.conversions import image_msg_to_rgb, rgb_to_image_msg
from cosmos_ros.nodes.qos import preview_qos
from cosmos_ros.nodes.spin import action_client

REPO = Path(__file__).resolve().parents[1]
PROMPT = "The robot arm picks up the red cube"
FOLLOWER = "rank 1 of 2 (pid "
TIMEOUT_S = 10  # COSMOS_ROS_GROUP_TIMEOUT_S: how long rank 0 waits for a follower to answer


def _torchrun_node(model: Path, out: Path) -> subprocess.Popen[str]:
    """The README's command with 2 CPU processes: ``torchrun ... -m cosmos_ros.nodes.generation_node``."""
    params = {"model_path": model, "output_dir": out, "device": "cpu", "dtype": "float32", "preview_loops": 1}
    ros_args = [a for name, value in params.items() for a in ("-p", f"{name}:={value}")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "cosmos_ros.nodes.generation_node", "--ros-args", *ros_args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env["COSMOS_ROS_GROUP_TIMEOUT_S"] = str(TIMEOUT_S)
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=out
    )


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    from cosmos_ros.model.runtime import CosmosRuntime

    model = tiny_model_dir(tmp_path_factory)
    out = tmp_path_factory.mktemp("group")
    proc = _torchrun_node(model, out)
    client = Client("group_test_client")
    try:
        lines = wait_for_line(proc, "generation_node active", timeout=180)
        if not any(FOLLOWER in line for line in lines):
            lines += wait_for_line(proc, FOLLOWER, timeout=30)
        pid = int(re.search(r"rank 1 of 2 \(pid (\d+)\)", "\n".join(lines)).group(1))
        action = action_client(client.node, PredictVideo, "predict_video")
        # one subscription for the whole module: a new one would first get the last frame (TRANSIENT_LOCAL)
        preview = client.collect(Image, "/generation_node/predicted_video", preview_qos())
        alone = CosmosRuntime.load(model, device="cpu", dtype="float32", safety_checker="off")
        yield {
            "proc": proc,
            "client": client,
            "action": action,
            "model": model,
            "follower_pid": pid,
            "alone": alone,
            "preview": preview,
        }
    finally:
        client.close()
        print(stop(proc, timeout=30)[-4000:])


def _goal(seed: int) -> PredictVideo.Goal:
    frame = rgb_to_image_msg(camera_frame(), Header(frame_id="camera_optical"))
    return PredictVideo.Goal(prompt=PROMPT, conditioning_frames=[frame], num_frames=5, steps=2, seed=seed)


def _served(group: dict, goal: PredictVideo.Goal, feedback: list | None = None) -> tuple[Any, np.ndarray]:
    """The goal's response and the frames rank 0 published on ~/predicted_video (raw rgb8, lossless)."""
    client, frames = group["client"], group["preview"]
    seen = -1
    while seen != len(frames):  # the previous goal's preview has finished playing
        seen = len(frames)
        time.sleep(0.5)
    frames.clear()
    handle = client.send_goal(group["action"], goal, feedback)
    response = client.wait(handle.get_result_async(), 180)
    assert response.result.success, response.result.message
    count = response.result.frame_count
    wait_until(lambda: len(frames) >= count, 30, f"{count} preview frames")
    return response, np.stack([image_msg_to_rgb(msg) for msg in frames[:count]])


def _assert_same_frames(served: np.ndarray, alone: np.ndarray) -> None:
    assert served.shape == alone.shape
    assert alone.std() > 1.0  # a real video, not a constant one on both sides
    diff = np.abs(served.astype(np.int16) - alone.astype(np.int16))
    assert diff.max() <= 1, diff.max()  # uint8 frames: at most a rounding step apart


def test_a_goal_served_by_two_processes_gives_the_single_process_frames(group) -> None:
    _response, served = _served(group, _goal(seed=3))
    runtime = group["alone"]
    whole: list[int] = []
    hook = runtime.pipe.transformer.transformer_blocks[0].attn1.register_forward_pre_hook(
        lambda _m, args, _kw: whole.append(int(args[0].shape[1])), with_kwargs=True
    )
    alone = runtime.predict([camera_frame()], PROMPT, num_frames=5, steps=2, seed=3, fit="crop").frames
    hook.remove()
    _assert_same_frames(served, alone)

    # rank 1 made the same call on its half of the tokens
    lines = wait_for_line(group["proc"], "predict done", timeout=30)
    line = next(line for line in reversed(lines) if FOLLOWER in line and "predict done" in line)
    seen = re.search(r"self-attention saw \[(\d+)\] tokens", line)
    assert seen is not None and sorted(set(whole)) == [2 * int(seen.group(1))], (line, whole)


def test_cancel_stops_every_rank_and_an_adapter_goal_still_matches(group, tmp_path) -> None:
    """A cancel mid-denoise stops both ranks at the same step (the next goal would hang otherwise); a goal
    naming an adapter folder gets its bytes to rank 1 too and predicts the single-process frames."""
    from action_msgs.msg import GoalStatus

    client = group["client"]
    feedback: list = []
    long = _goal(seed=1)
    long.steps = 200
    handle = client.send_goal(group["action"], long, feedback)
    wait_until(lambda: any(f.stage == "denoise" for f in feedback), 60, "first denoising step")
    client.wait(handle.cancel_goal_async(), 10)
    response = client.wait(handle.get_result_async(), 60)
    assert response.status == GoalStatus.STATUS_CANCELED, response.result.message
    wait_for_line(group["proc"], "predict failed: PredictionCancelled", timeout=30)  # rank 1 stopped too

    adapter = make_tiny_adapter(group["model"], tmp_path / "arm_adapter")
    goal = _goal(seed=5)
    goal.adapter = str(adapter)
    response, served = _served(group, goal)
    assert response.result.adapter_id == "arm_adapter"
    runtime = group["alone"]
    runtime.load_adapter("arm", adapter)
    frames = [camera_frame()]
    alone = runtime.predict(frames, PROMPT, adapter="arm", num_frames=5, steps=2, seed=5, fit="crop").frames
    base = runtime.predict(frames, PROMPT, adapter=None, num_frames=5, steps=2, seed=5, fit="crop").frames
    assert np.abs(alone.astype(int) - base.astype(int)).mean() > 0.1  # the adapter acts
    _assert_same_frames(served, alone)


def test_a_follower_that_stops_answering_fails_the_goal_with_a_reason(group) -> None:
    """Rank 1 frozen (SIGSTOP): the goal ends ABORTED naming it, within the timeout, instead of hanging.

    Runs last: the group is not usable afterwards (rank 1 is then killed and torchrun stops the rest).
    """
    from action_msgs.msg import GoalStatus

    client, pid = group["client"], group["follower_pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        handle = client.send_goal(group["action"], _goal(seed=4))
        response = client.wait(handle.get_result_async(), TIMEOUT_S + 60)
    finally:
        os.kill(pid, signal.SIGKILL)
    assert response.status == GoalStatus.STATUS_ABORTED and not response.result.success
    assert "GPU group: rank(s) [1] did not take call" in response.result.message, response.result.message
