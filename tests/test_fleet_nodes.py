"""A fleet over DDS with the tiny model: two generation nodes, two capture nodes, one generator lost.

Every node runs in its own process (real entry points). robot1's capture node lists the two
generators; robot2's discovers them in the graph. Fast DDS is given a 2 s participant lease here
so a killed process leaves the graph in about 2 s instead of its default 20 s.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nodes_helpers import Client, camera_frame, start_node, tiny_model_dir, wait_until
from ros_helpers import stop

pytest.importorskip("rclpy")
from action_msgs.msg import GoalStatus
from cosmos_ros_interfaces.action import CaptureAndPredict
from diagnostic_msgs.msg import DiagnosticArray

from cosmos_ros.nodes.spin import action_client

GENERATORS = ("/gpu0/predict_video", "/gpu1/predict_video")
SHORT_LEASE = """<?xml version="1.0" encoding="UTF-8"?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <participant profile_name="short_lease" is_default_profile="true">
    <rtps><builtin><discovery_config>
      <leaseDuration><sec>2</sec></leaseDuration>
      <leaseAnnouncement><nanosec>500000000</nanosec></leaseAnnouncement>
    </discovery_config></builtin></rtps>
  </participant>
</profiles>
"""


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    model = tiny_model_dir(tmp_path_factory)
    work = tmp_path_factory.mktemp("fleet")
    lease = work / "short_lease.xml"
    lease.write_text(SHORT_LEASE)
    saved = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(lease)  # for the node processes and the client
    procs: dict[str, subprocess.Popen[str]] = {}
    client = None
    try:
        gen_params = {
            "model_path": str(model),
            "device": "cpu",
            "dtype": "float32",
            "warmup": False,
            "preview_loops": 0,
            "diagnostics_period": 0.1,
        }
        common = {
            "camera_topics": ["/fleet_cam/image_raw"],
            "max_frame_age": 0.0,
            "task": "The robot arm picks up the red cube.",
            "num_frames": 5,
            "generator_lost_timeout": 0.5,
        }
        starts = {  # name -> (module, parameters, ready line, namespace)
            gen: ("generation_node", {**gen_params, "output_dir": str(work / gen.split("/")[1])},
                  "generation_node active", gen.rsplit("/", 1)[0])
            for gen in GENERATORS
        }  # fmt: skip
        starts["robot1"] = ("capture_node", {**common, "generation_actions": list(GENERATORS), "steps": 2},
                            "capturing", "/robot1")  # fmt: skip
        # robot2's goals run longer (40 steps, about 1 s) so one can be caught mid-goal.
        starts["robot2"] = ("capture_node", {**common, "discover_generators": True, "steps": 40},
                            "capturing", "/robot2")  # fmt: skip

        def start(name: str) -> None:  # all at once: model loading dominates the set-up time
            module, params, ready, ns = starts[name]
            procs[name], _ = start_node(module, params, ready, timeout=90, ros_args=["-r", f"__ns:={ns}"])

        with ThreadPoolExecutor(len(starts)) as pool:
            list(pool.map(start, starts))
        client = Client("fleet_client")
        yield {"procs": procs, "client": client, "work": work}
    finally:
        if client is not None:
            client.close()
        for name, proc in procs.items():
            print(f"--- {name}:\n{stop(proc)}")  # shown when the test fails
        if saved is None:
            os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
        else:
            os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = saved


def served_by(result: CaptureAndPredict.Result, work: Path) -> str:
    """The generator named by the result, checked against where its video was written."""
    name = next((g for g in GENERATORS if result.message.startswith(g)), "")
    assert name, result.message
    assert Path(result.video_path).parent == work / name.split("/")[1], (result.video_path, name)
    return name


def test_goals_spread_over_the_fleet_and_survive_a_generator_going_down(fleet) -> None:
    client, work = fleet["client"], fleet["work"]
    actions = {
        r: action_client(client.node, CaptureAndPredict, f"/{r}/capture_and_predict")
        for r in ("robot1", "robot2")
    }
    busy_at: dict[str, float] = {}  # generation node -> when it last reported "busy"

    def on_diagnostics(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.message.startswith("busy"):
                busy_at[status.name.split(" ", 1)[-1]] = time.monotonic()

    client.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    stop_camera = client.camera("/fleet_cam/image_raw", camera_frame(48, 64))

    def capture(robot: str, out: dict, feedback: list | None = None) -> None:
        handle = client.send_goal(actions[robot], CaptureAndPredict.Goal(), feedback)
        response = client.wait(handle.get_result_async(), 40)
        out[robot] = (response.status, response.result)

    try:
        # Both robots at once, twice: a busy generator rejects, the capture node tries the other.
        served = []
        for _round in range(2):
            results: dict = {}
            threads = [threading.Thread(target=capture, args=(r, results)) for r in actions]
            for t in threads:
                t.start()
            for t in threads:
                t.join(150)
            assert set(results) == set(actions), results  # a failed capture() leaves no result
            for status, result in results.values():
                assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
                served.append(served_by(result, work))
        assert set(served) == set(GENERATORS), served

        # A generator dies mid-goal: that goal fails naming it, the next goes to the other one.
        results = {}
        feedback: list = []
        thread = threading.Thread(target=capture, args=("robot2", results, feedback))
        thread.start()
        wait_until(lambda: any(f.stage == "denoise" for f in feedback), 60, "robot2's first denoising step")
        denoising_at = time.monotonic()  # "busy" reports from here on are about this goal

        def busy_now() -> list[str]:
            return [
                g
                for g in GENERATORS
                if busy_at.get(g.rsplit("/", 1)[0] + "/generation_node", 0) > denoising_at
            ]

        wait_until(lambda: busy_now(), 10, "a busy generator in /diagnostics")
        [victim] = busy_now()
        fleet["procs"][victim].kill()
        thread.join(60)
        status, lost = results["robot2"]
        assert status == GoalStatus.STATUS_ABORTED and not lost.success
        assert f"generator {victim} went down mid-goal" in lost.message, lost.message

        survivor = next(g for g in GENERATORS if g != victim)
        for robot in actions:
            results = {}
            capture(robot, results)
            status, result = results[robot]
            assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message
            assert served_by(result, work) == survivor
    finally:
        stop_camera()
