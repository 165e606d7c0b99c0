"""The procedural robot world (bag_tools/world.py) and `bags synth --embodiment`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bags_helpers import cli
from cosmos_ros.bag_tools import world


def test_an_episode_is_a_pure_function_of_embodiment_and_seed() -> None:
    a = world.render_episode(world.make_episode("grey_arm", 7), count=5)
    b = world.render_episode(world.make_episode("grey_arm", 7), count=5)
    c = world.render_episode(world.make_episode("grey_arm", 8), count=5)
    d = world.render_episode(world.make_episode("slim_arm", 7), count=5)
    assert a.shape == (5, 64, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_target_embodiments_are_never_pretraining_ones_and_differ_in_geometry_and_camera() -> None:
    assert not set(world.TARGET_EMBODIMENTS) & set(world.PRETRAIN_EMBODIMENTS)
    for target in world.TARGET_EMBODIMENTS.values():
        assert all(target.mount != e.mount for e in world.PRETRAIN_EMBODIMENTS.values())
        assert all(target.camera != e.camera for e in world.PRETRAIN_EMBODIMENTS.values())


def test_the_block_is_carried_from_its_place_into_the_bowl() -> None:
    episode = world.make_episode("stout_arm", 3)
    scene = episode.scene
    _, start, holding_start = world.gripper_path(episode, 0.0)
    gripper_mid, mid, holding_mid = world.gripper_path(episode, 0.5)
    _, end, holding_end = world.gripper_path(episode, 1.0)
    assert not holding_start and holding_mid and not holding_end
    assert start[0] == pytest.approx(scene.block_x) and end[0] == pytest.approx(scene.bowl_x)
    assert np.allclose(gripper_mid, mid)
    # the moving block changes pixels: first and last frames differ where it was picked up
    frames = world.render_episode(episode)
    assert np.abs(frames[0].astype(int) - frames[-1]).max() > 100


def test_prompts_name_the_moved_block_and_the_bowl_side_as_the_camera_sees_it() -> None:
    seen = set()
    for name in world.EMBODIMENTS:
        for seed in range(12):
            episode = world.make_episode(name, seed)
            seen.add(episode.prompt)
            assert f"the {episode.scene.block} block" in episode.prompt
            mirrored = episode.embodiment.camera.mirror
            left_in_world = episode.scene.bowl_x < 0.75
            side = "left" if left_in_world != mirrored else "right"
            assert episode.prompt.endswith(f"bowl on the {side}.")
    assert seen <= set(world.all_prompts())  # the prompt table cosmos-mini is trained with covers all


def test_unknown_embodiment_is_one_line_listing_the_known_ones(tmp_path: Path) -> None:
    result = cli("bags", "synth", str(tmp_path / "x"), "--embodiment", "robot_dog")
    assert result.returncode == 1
    assert "unknown embodiment 'robot_dog'" in result.stderr and "ceiling_arm" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x").exists()


def test_synth_embodiment_records_the_episode_and_its_prompt(tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader
    from rosbags.image import message_to_cvimage

    bag = tmp_path / "ceiling"
    args = (
        "--embodiment",
        "ceiling_arm",
        "--episode-seed",
        "5",
        "--frames",
        "12",
        "--height",
        "64",
        "--width",
        "96",
    )
    result = cli("bags", "synth", str(bag), *args)
    assert result.returncode == 0, result.stderr
    episode = world.make_episode("ceiling_arm", 5, frames=12, fps=30.0)
    with AnyReader([bag]) as reader:
        by_topic = {c.topic: c for c in reader.connections}
        prompt_msgs = reader.messages([by_topic["/task/prompt"]])
        prompts = [reader.deserialize(raw, c.msgtype).data for c, _, raw in prompt_msgs]
        image_msgs = reader.messages([by_topic["/camera/image_raw"]])
        images = [message_to_cvimage(reader.deserialize(raw, c.msgtype), "rgb8") for c, _, raw in image_msgs]
    assert prompts == [episode.prompt]
    assert len(images) == 12
    assert np.array_equal(images[7], world.render_frame(episode, 7, 64, 96))
