"""The fleet's generator ranking (generator_pool.py), with explicit clocks; the capture node's pool."""

from __future__ import annotations

import pytest

from cosmos_ros.nodes.generator_pool import (
    PREDICT_VIDEO_TYPE,
    GeneratorPool,
    discovered_generators,
    holds,
    namespace_of,
)

G0, G1, G2 = "/gpu0/predict_video", "/gpu1/predict_video", "/gpu2/predict_video"


def test_discovery_keeps_only_predict_video_servers_and_namespaces_match_nodes() -> None:
    graph = [
        (G1, [PREDICT_VIDEO_TYPE]),
        ("/robot1/capture_and_predict", ["cosmos_ros_interfaces/action/CaptureAndPredict"]),
        (G0, [PREDICT_VIDEO_TYPE]),
    ]
    assert discovered_generators(graph) == [G0, G1]
    assert namespace_of(G0) == namespace_of("/gpu0/generation_node") == "/gpu0"
    assert namespace_of("/predict_video") == "/"
    assert holds("arm@3", "arm") and holds("arm@3", "arm@3")
    assert not holds("arm@3", "arm@2") and not holds("gripper@1", "arm")


def test_idle_generators_take_turns_and_a_rejecting_one_goes_last() -> None:
    pool = GeneratorPool([G0, G1])
    assert pool.order([G0, G1], now=1.0) == [G0, G1]
    pool.started(G0, now=1.0)
    assert pool.order([G0, G1], now=2.0) == [G1, G0]  # a goal of ours runs on G0
    pool.finished(G0, now=3.0)
    assert pool.order([G0, G1], now=4.0) == [G1, G0]  # round robin: G1 was never used
    pool.tried(G1, now=5.0)  # G1 rejected a goal
    assert pool.order([G0, G1], now=6.0) == [G0, G1]
    assert pool.order([G1], now=6.0) == [G1]  # only available ones are ranked


def test_diagnostics_steer_away_from_busy_generators_and_towards_the_wanted_adapter() -> None:
    pool = GeneratorPool([G0, G1, G2], status_max_age=5.0)
    pool.note_status("/gpu0/generation_node", busy=True, adapter="", now=10.0)
    pool.note_status("/gpu1/generation_node", busy=False, adapter="gripper@1", now=10.0)
    pool.note_status("/gpu2/generation_node", busy=False, adapter="arm@3", now=10.0)
    assert pool.order([G0, G1, G2], adapter="arm", now=11.0) == [G2, G1, G0]
    assert pool.order([G0, G1, G2], now=11.0) == [G1, G2, G0]  # no adapter asked: no preference
    # Reports older than status_max_age no longer count.
    assert pool.order([G0, G1, G2], adapter="arm", now=20.0) == [G0, G1, G2]


def test_a_generator_lost_mid_goal_is_tried_last_for_a_while() -> None:
    pool = GeneratorPool([G0, G1], lost_penalty=30.0)
    pool.tried(G1, now=1.0)
    pool.started(G0, now=2.0)
    pool.finished(G0, lost=True, now=3.0)
    assert pool.order([G0, G1], now=4.0) == [G1, G0]
    assert pool.order([G0, G1], now=40.0) == [G1, G0]  # penalty over: round robin again (G1 older)
    pool.tried(G1, now=41.0)
    assert pool.order([G0, G1], now=42.0) == [G0, G1]


def test_discovered_names_join_the_fixed_ones_only_with_discovery() -> None:
    fixed = GeneratorPool([G0])
    fixed.set_discovered([G1])
    assert fixed.names() == [G0]
    found = GeneratorPool([G0], discover=True)
    found.set_discovered([G1, G0])
    assert found.names() == [G0, G1]


def test_a_pool_needs_absolute_names_or_discovery() -> None:
    with pytest.raises(ValueError, match="neither"):
        GeneratorPool([])
    with pytest.raises(ValueError, match="'gpu0/predict_video'"):
        GeneratorPool(["gpu0/predict_video"])


def test_the_capture_node_builds_a_pool_only_when_asked_and_names_a_bad_list() -> None:
    rclpy = pytest.importorskip("rclpy")
    from rclpy.parameter import Parameter

    from cosmos_ros.nodes.capture_node import CaptureNode

    context = rclpy.Context()
    rclpy.init(context=context)

    def pool_of(**params: object) -> tuple[list[str], bool] | None:
        overrides = [Parameter(name, value=value) for name, value in params.items()]
        node = CaptureNode(context=context, namespace="/robot1", parameter_overrides=overrides)
        try:
            if node._pool is None:  # today's single generator, generation_action
                assert node._generator is not None
                return None
            return node._pool.fixed, node._pool.discover
        finally:
            node.destroy_node()

    try:
        assert pool_of() is None
        assert pool_of(generation_action="/gpu0/predict_video") is None
        # Relative names follow the capture node's namespace, as generation_action's do.
        assert pool_of(generation_actions=[G0, "predict_video"]) == ([G0, "/robot1/predict_video"], False)
        assert pool_of(discover_generators=True) == ([], True)
        with pytest.raises(
            ValueError, match=r"generation_actions must be a list of action names, got \[''\]"
        ):
            pool_of(generation_actions=[""])
        with pytest.raises(ValueError, match="got '/gpu0/predict_video'"):
            pool_of(generation_actions=G0)
    finally:
        rclpy.shutdown(context=context)
