"""Capture node: buffers camera frames and sends the newest ones to the generation node.

Subscribes to the configured camera topics (sensor_msgs/Image, or CompressedImage for topics
ending in ``/compressed``), keeps the latest ``buffer_size`` frames per camera, and on request
sends the newest frame(s) with the configured prompt/adapter to the generation node's
``predict_video`` action. Requests come from the ``capture_and_predict`` action (which forwards
the generator's feedback), the ``~/trigger`` service (answers once the video is made, or says why
not) or a periodic timer.
Fleet: with ``generation_actions`` and/or ``discover_generators`` the goals go to several
generation nodes (one per GPU, each in its own namespace): each goal is sent to the best available
one (generator_pool.py ranks them), the next is tried when one rejects it, and a generator that
goes down mid-goal fails that goal with its name instead of hanging.
Parameters: config/capture_node.yaml.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence

import rclpy
from cosmos_ros_interfaces.action import CaptureAndPredict, PredictVideo
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import (
    ActionClient,
    ActionServer,
    CancelResponse,
    GoalResponse,
    get_action_names_and_types,
)
from rclpy.action.client import ClientGoalHandle
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import Trigger

from cosmos_ros.nodes.conversions import (
    ArrivalCheck,
    UnsupportedImage,
    image_msg_to_rgb,
    rgb_to_image_msg,
    stamp_to_seconds,
)
from cosmos_ros.nodes.embodiment import Embodiment, build_prompt, load_embodiment
from cosmos_ros.nodes.frame_buffer import AGE_SOURCES, FrameBuffer, FrameRefused
from cosmos_ros.nodes.generator_pool import STATUS_PREFIX, GeneratorPool, discovered_generators
from cosmos_ros.nodes.qos import QOS_NAMES, camera_qos
from cosmos_ros.nodes.spin import action_client

#: Parameter name -> (default, description). config/capture_node.yaml documents the same.
PARAMETERS: dict[str, tuple[object, str]] = {
    "camera_topics": (
        ["/camera/image_raw"],
        "camera topics; names ending in /compressed are sensor_msgs/CompressedImage, others Image",
    ),
    "camera_topic": ("", "one camera topic that replaces camera_topics and the embodiment's ('' = unset)"),
    "camera_qos": ("sensor_data", f"camera subscription QoS: {', '.join(QOS_NAMES)}"),
    "camera_qos_depth": (5, "camera subscription queue depth"),
    "buffer_size": (4, "frames kept per camera"),
    "max_frame_age": (1.0, "seconds; newer frames only are sent (0 = no limit)"),
    "frame_age_source": ("receive", "clock for max_frame_age: receive (local arrival) or header (stamp)"),
    "embodiment_file": ("", "embodiment YAML (adapter, camera_topic, prompt_template, resolution)"),
    "prompt_template": ("", "prompt; '{task}' is replaced by the goal's prompt (overrides the embodiment)"),
    "task": ("", "task text used when a request carries no prompt"),
    "adapter": ("", "adapter sent with each goal (overrides the embodiment); '' = generator's active"),
    "num_conditioning_frames": (1, "frames sent per request (1 = image-to-world)"),
    "num_frames": (0, "frames to predict, 4k+1 (0 = embodiment / generator default)"),
    "preset": ("", "generation preset ('' = generator default)"),
    "steps": (0, "denoising steps (0 = preset default)"),
    "guidance": (-1.0, "guidance scale (< 0 = preset default)"),
    "seed": (0, "seed sent with each goal"),
    "resolution": ([0, 0], "[height, width] the frames are fitted to before sending ([0, 0] = unchanged)"),
    "fit_mode": ("crop", "how frames are fitted to resolution: crop or letterbox"),
    "generation_action": ("predict_video", "the generation node's PredictVideo action name"),
    "generation_actions": (
        [],
        "fleet: PredictVideo action names to spread goals over; replaces generation_action ([] = unset)",
    ),
    "discover_generators": (False, "fleet: also use every PredictVideo action server found in the graph"),
    "generator_lost_timeout": (
        2.0,
        "fleet: seconds a generator's server may be gone from the graph mid-goal before the goal fails",
    ),
    "result_timeout": (0.0, "seconds to wait for a goal's result before it fails (0 = no limit)"),
    "server_timeout": (5.0, "seconds to wait for the generation action server"),
    "period": (0.0, "seconds between automatic requests (0 = off); skipped while one is running"),
}


class CaptureNode(Node):
    """Frames in, PredictVideo goals out. Thin: the buffer, age rule and conversions are library code."""

    def __init__(self, node_name: str = "capture_node", **kwargs: object) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            # An empty list default would type the parameter as a byte array: let lists of names in.
            dynamic = name == "generation_actions"
            self.declare_parameter(
                name, default, ParameterDescriptor(description=description, dynamic_typing=dynamic)
            )
        p = self._params = {name: self.get_parameter(name).value for name in PARAMETERS}

        self.embodiment = Embodiment()
        if p["embodiment_file"]:
            self.embodiment = load_embodiment(p["embodiment_file"])
        # camera_topic (what --camera-topic sets) > the embodiment's > camera_topics. The embodiment
        # only replaces camera_topics at its default: a list set by hand is kept.
        topics = list(p["camera_topics"] or [])
        if p["camera_topic"]:
            topics = [p["camera_topic"]]
        elif self.embodiment.camera_topic and topics == PARAMETERS["camera_topics"][0]:
            topics = [self.embodiment.camera_topic]
        if not topics or not all(topics):
            raise ValueError(f"{node_name}: camera_topics must name at least one topic, got {topics!r}")
        if p["frame_age_source"] not in AGE_SOURCES:
            raise ValueError(f"frame_age_source must be one of {AGE_SOURCES}, got {p['frame_age_source']!r}")
        qos = camera_qos(p["camera_qos"], p["camera_qos_depth"])

        self._sensor_group = MutuallyExclusiveCallbackGroup()
        self._request_group = ReentrantCallbackGroup()
        self._client_group = ReentrantCallbackGroup()
        self.buffers: dict[str, FrameBuffer] = {}
        self._arrival = ArrivalCheck()  # unusable frames (encoding, size) are reported as they arrive
        for topic in topics:
            resolved = self.resolve_topic_name(topic)
            self.buffers[resolved] = FrameBuffer(resolved, p["buffer_size"])
            msg_type = CompressedImage if resolved.endswith("/compressed") else Image
            self.create_subscription(
                msg_type,
                topic,
                lambda msg, t=resolved: self._on_frame(t, msg),
                qos,
                callback_group=self._sensor_group,
            )
        self._pool = self._make_pool()
        self._generator: ActionClient | None = None  # the one generation_action, without a fleet
        if self._pool is None:
            self._generator = action_client(
                self, PredictVideo, p["generation_action"], callback_group=self._client_group
            )
        self._generator_clients: dict[str, ActionClient] = {}
        self._generator_clients_lock = threading.Lock()
        self._in_flight = threading.Lock()
        self._server = ActionServer(
            self,
            CaptureAndPredict,
            "capture_and_predict",
            execute_callback=self._execute,
            goal_callback=lambda _goal: GoalResponse.ACCEPT,
            cancel_callback=lambda _handle: CancelResponse.ACCEPT,
            callback_group=self._request_group,
        )
        self.create_service(Trigger, "~/trigger", self._on_trigger, callback_group=self._request_group)
        if p["period"] > 0:
            self.create_timer(p["period"], self._on_timer, callback_group=self._request_group)
        if self._generator is not None:
            target = self._generator._action_name
        else:
            assert self._pool is not None
            target = ", ".join(self._pool.fixed + (["(discovered)"] if self._pool.discover else []))
        self.get_logger().info(f"capturing {', '.join(self.buffers)} -> {target}")

    def _make_pool(self) -> GeneratorPool | None:
        """The fleet's generator pool, or None for the one ``generation_action`` (today's behaviour)."""
        p = self._params
        names = p["generation_actions"]
        if names in (None, "", b""):
            names = []
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"generation_actions must be a list of action names, got {names!r}")
        if not names and not p["discover_generators"]:
            return None
        pool = GeneratorPool(
            [self.resolve_topic_name(n) for n in names],
            discover=bool(p["discover_generators"]),
        )
        # Which generator is busy and which adapter it holds: free from generation_node's reports.
        self.create_subscription(
            DiagnosticArray, "/diagnostics", self._on_diagnostics, 10, callback_group=self._sensor_group
        )
        return pool

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        assert self._pool is not None
        for status in msg.status:
            if status.name.startswith(STATUS_PREFIX):
                values = {kv.key: kv.value for kv in status.values}
                adapter = values.get("active_adapter", "")
                self._pool.note_status(
                    status.name[len(STATUS_PREFIX) :],
                    busy=status.message.startswith("busy"),
                    adapter="" if adapter == "none" else adapter,
                )

    # ----------------------------------------------------------------- frames
    def _on_frame(self, topic: str, msg: Image | CompressedImage) -> None:
        reason = self._arrival.check(topic, msg)
        if reason is not None:
            self.get_logger().warning(f"{topic}: unusable frame: {reason}")
        now = self.get_clock().now().nanoseconds / 1e9
        self.buffers[topic].push(msg, stamp_to_seconds(msg.header.stamp), now)

    def _pick_buffer(self, camera: str) -> FrameBuffer:
        if not camera:
            return next(iter(self.buffers.values()))
        for topic, buffer in self.buffers.items():
            if camera in (topic, topic.lstrip("/")) or topic.endswith("/" + camera.strip("/")):
                return buffer
        raise FrameRefused(
            f"camera {camera!r} is not one of the configured topics: {', '.join(self.buffers)}"
        )

    def conditioning_frames(self, camera: str = "", count: int = 0) -> list[Image]:
        """The newest frame(s) of a camera as rgb8 Images (original headers), or FrameRefused."""
        p = self._params
        buffer = self._pick_buffer(camera)
        count = count or p["num_conditioning_frames"] or 1
        now = self.get_clock().now().nanoseconds / 1e9
        frames = buffer.newest(count, now, p["max_frame_age"], p["frame_age_source"])
        resolution = tuple(p["resolution"]) if any(p["resolution"]) else self.embodiment.resolution
        images = []
        for frame in frames:
            try:
                rgb = image_msg_to_rgb(frame.msg)
            except UnsupportedImage as exc:
                raise FrameRefused(f"camera {buffer.topic}: {exc}") from exc
            if resolution:
                from cosmos_ros.media.frame_fit import fit_frame

                rgb = fit_frame(rgb, resolution[0], resolution[1], mode=p["fit_mode"])
            images.append(rgb_to_image_msg(rgb, frame.msg.header))
        return images

    def build_goal(self, request: CaptureAndPredict.Goal | None = None) -> PredictVideo.Goal:
        """The PredictVideo goal for a request (empty request fields use this node's parameters)."""
        p = self._params
        request = request or CaptureAndPredict.Goal()
        template = p["prompt_template"] or self.embodiment.prompt_template
        prompt = build_prompt(template, request.prompt or p["task"])
        if not prompt:
            raise FrameRefused(
                "empty prompt: set prompt_template/task (or an embodiment file), or send a prompt"
            )
        frames = self.conditioning_frames(request.camera, request.num_conditioning_frames)
        return PredictVideo.Goal(
            prompt=prompt,
            adapter=request.adapter or p["adapter"] or self.embodiment.adapter,
            conditioning_frames=frames,
            num_frames=request.num_frames or p["num_frames"] or self.embodiment.num_frames,
            preset=request.preset or p["preset"],
            steps=p["steps"],
            guidance=float(p["guidance"]),
            seed=request.seed or p["seed"],
        )

    # --------------------------------------------------------------- requests
    def _send(self, goal: PredictVideo.Goal, feedback_callback=None):
        assert self._generator is not None
        if not self._generator.wait_for_server(timeout_sec=self._params["server_timeout"]):
            raise FrameRefused(
                f"generation action {self._generator._action_name} is not available "
                f"(waited {self._params['server_timeout']:g} s); is generation_node running and active?"
            )
        return self._generator.send_goal_async(goal, feedback_callback=feedback_callback)

    def _execute(self, handle: ServerGoalHandle) -> CaptureAndPredict.Result:
        started = time.monotonic()
        result = CaptureAndPredict.Result()
        if not self._in_flight.acquire(blocking=False):
            handle.abort()
            result.message = "busy: a capture request is already waiting for the generation node"
            return result
        try:
            return self._forward(handle, result, started)
        except FrameRefused as exc:
            self.get_logger().error(str(exc))
            result.message = str(exc)
            handle.abort()
            return result
        finally:
            self._in_flight.release()

    def _forward(
        self, handle: ServerGoalHandle, result: CaptureAndPredict.Result, started: float
    ) -> CaptureAndPredict.Result:
        goal = self.build_goal(handle.request)
        result.conditioning_stamp = goal.conditioning_frames[-1].header.stamp

        def forward_feedback(msg: PredictVideo.Impl.FeedbackMessage) -> None:
            fb = msg.feedback
            handle.publish_feedback(
                CaptureAndPredict.Feedback(
                    stage=fb.stage, step=fb.step, total_steps=fb.total_steps, elapsed=fb.elapsed
                )
            )

        gen = self._generate(goal, forward_feedback, lambda: handle.is_cancel_requested)
        result.success = gen.success
        result.message = gen.message
        result.video_path = gen.video_path
        result.adapter_id = gen.adapter_id
        result.frame_count = gen.frame_count
        result.fps = gen.fps
        result.total_seconds = time.monotonic() - started
        if handle.is_cancel_requested:
            handle.canceled()
        elif gen.success:
            handle.succeed()
        else:
            handle.abort()
        return result

    def _generate(
        self,
        goal: PredictVideo.Goal,
        feedback_callback=None,
        cancel_requested=lambda: False,
    ) -> PredictVideo.Result:
        """Send ``goal`` and wait for its result; a rejection or shutdown raises FrameRefused.

        Waits on events (the action client's callbacks run on other executor threads), and
        forwards a cancel once ``cancel_requested()`` turns true.
        """
        if self._pool is not None:
            return self._generate_pooled(goal, feedback_callback, cancel_requested)
        done = threading.Event()
        sent = self._send(goal, feedback_callback)
        sent.add_done_callback(lambda _f: done.set())
        while not done.wait(0.05):
            if not rclpy.ok():
                raise FrameRefused("shutting down")
        gen_handle = sent.result()
        if gen_handle is None or not gen_handle.accepted:
            raise FrameRefused(
                "the generation node rejected the goal: it is not active, or busy (see its busy_policy); "
                "its log and /diagnostics (last_rejection) say which"
            )
        result, _lost = self._await_result(gen_handle, cancel_requested)
        return result

    def _await_result(
        self,
        gen_handle: ClientGoalHandle,
        cancel_requested: Callable[[], bool],
        client: ActionClient | None = None,
        name: str = "",
    ) -> tuple[PredictVideo.Result, bool]:
        """Wait for an accepted goal's result; ``(result, lost)``, lost: the generator went down.

        With ``client`` (the fleet), a goal whose server stays gone from the graph for
        ``generator_lost_timeout`` s ends with a failure naming it: a crashed generation node sends
        no result, and waiting for one would hang this node's request for good.
        """
        p = self._params
        finished = threading.Event()
        result_future = gen_handle.get_result_async()
        result_future.add_done_callback(lambda _f: finished.set())
        cancel_sent = False
        started = time.monotonic()
        gone_since: float | None = None
        next_check = started
        who = f"generator {name}" if name else f"generation action {p['generation_action']}"
        while not finished.wait(0.02):
            if cancel_requested() and not cancel_sent:
                gen_handle.cancel_goal_async()
                cancel_sent = True
            if not rclpy.ok():
                raise FrameRefused("shutting down")
            now = time.monotonic()
            if p["result_timeout"] > 0 and now - started > p["result_timeout"]:
                gen_handle.cancel_goal_async()
                message = f"{who} sent no result within result_timeout={p['result_timeout']:g} s"
                return PredictVideo.Result(success=False, message=message), True
            if client is not None and now >= next_check:
                next_check = now + 0.2
                if client.server_is_ready():
                    gone_since = None
                elif gone_since is None:
                    gone_since = now
                elif now - gone_since >= p["generator_lost_timeout"]:
                    message = (
                        f"{who} went down mid-goal: its action server left the graph "
                        f"(gone for {now - gone_since:.1f} s)"
                    )
                    return PredictVideo.Result(success=False, message=message), True
        return result_future.result().result, False

    # ------------------------------------------------------------------ fleet
    def _client_for(self, name: str) -> ActionClient:
        """One action client per generator, made on first use (discovered ones appear at run time)."""
        with self._generator_clients_lock:
            if name not in self._generator_clients:
                self._generator_clients[name] = action_client(
                    self, PredictVideo, name, callback_group=self._client_group
                )
            return self._generator_clients[name]

    def _available_generators(self) -> list[str]:
        """Generators whose action server is in the graph now, waiting up to ``server_timeout`` for one."""
        assert self._pool is not None
        deadline = time.monotonic() + self._params["server_timeout"]
        while True:
            if self._pool.discover:
                self._pool.set_discovered(discovered_generators(get_action_names_and_types(self)))
            names = self._pool.names()
            ready = [n for n in names if self._client_for(n).server_is_ready()]
            if ready or time.monotonic() >= deadline:
                break
            if not rclpy.ok():
                raise FrameRefused("shutting down")
            time.sleep(0.1)
        if not ready:
            raise FrameRefused(
                f"no generator is available (waited {self._params['server_timeout']:g} s) among: "
                f"{', '.join(names) or 'none discovered'}; are the generation nodes running and active?"
            )
        return ready

    def _dispatch(
        self, goal: PredictVideo.Goal, feedback_callback: Callable | None = None
    ) -> tuple[str, ActionClient, ClientGoalHandle]:
        """Send ``goal`` to the best available generator, the next one on a rejection.

        Returns ``(name, client, goal handle)``; FrameRefused when every generator refused it.
        """
        assert self._pool is not None
        ranked = self._pool.order(self._available_generators(), goal.adapter)
        refused = []
        for name in ranked:
            client = self._client_for(name)
            sent = client.send_goal_async(goal, feedback_callback=feedback_callback)
            answered = threading.Event()
            sent.add_done_callback(lambda _f, e=answered: e.set())
            deadline = time.monotonic() + self._params["server_timeout"]
            while not answered.wait(0.05):
                if not rclpy.ok():
                    raise FrameRefused("shutting down")
                if time.monotonic() > deadline:
                    break
            if not answered.is_set():  # no answer: cancel it should it be accepted after all
                sent.add_done_callback(_cancel_if_accepted)
                refused.append(f"{name} (no answer)")
                self._pool.tried(name)
                continue
            handle = sent.result()
            if handle is not None and handle.accepted:
                self._pool.started(name)
                return name, client, handle
            refused.append(name)
            self._pool.tried(name)
        raise FrameRefused(
            f"every available generator rejected the goal: {', '.join(refused)}; they are busy or "
            "not active (see busy_policy); their logs and /diagnostics (last_rejection) say which"
        )

    def _generate_pooled(
        self,
        goal: PredictVideo.Goal,
        feedback_callback: Callable | None,
        cancel_requested: Callable[[], bool],
    ) -> PredictVideo.Result:
        """:meth:`_generate` over the fleet; the result's message starts with the generator's name."""
        assert self._pool is not None
        name, client, handle = self._dispatch(goal, feedback_callback)
        lost = False
        try:
            result, lost = self._await_result(handle, cancel_requested, client, name)
        finally:
            self._pool.finished(name, lost=lost)
        if lost:
            self.get_logger().warning(result.message)
        elif not result.message.startswith(name):
            result.message = f"{name}: {result.message}".strip()
        return result

    def _fire(self, origin: str) -> tuple[bool, str]:
        """Capture and predict, then report the generator's verdict (service and timer).

        Waits for the prediction, so ``success`` means a video was made, and a refused goal or a
        failed prediction comes back with the generator's reason. Runs in the reentrant request
        group: other requests, frames and services are served meanwhile.
        """
        if not self._in_flight.acquire(blocking=False):
            return False, "busy: a request is already in flight"
        try:
            gen = self._generate(self.build_goal())
        except FrameRefused as exc:
            self.get_logger().error(f"{origin}: {exc}")
            return False, str(exc)
        finally:
            self._in_flight.release()
        message = f"{gen.message} {gen.video_path}".strip()
        # Two call sites: rclpy refuses one logging line that changes severity between calls.
        if gen.success:
            self.get_logger().info(f"{origin}: {message}")
        else:
            self.get_logger().error(f"{origin}: {message}")
        return gen.success, message

    def _on_trigger(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self._fire("trigger")
        return response

    def _on_timer(self) -> None:
        if self._in_flight.locked():
            return
        self._fire("timer")


def _cancel_if_accepted(future: Future) -> None:
    """Cancel a goal accepted after this node gave up on the answer (it would run for nobody)."""
    handle = future.result()
    if handle is not None and handle.accepted:
        handle.cancel_goal_async()


def main(args: Sequence[str] | None = None) -> int:
    """``ros2 run cosmos_ros capture_node [--help] [--ros-args ...]``: spin until Ctrl-C.

    ``args`` defaults to ``sys.argv`` (program name first).
    """
    from cosmos_ros.nodes.spin import parse_node_args, run_nodes

    argv = list(args) if args is not None else sys.argv
    parse_node_args("capture_node", (__doc__ or "").split("\n", 1)[0], PARAMETERS, argv)
    return run_nodes(lambda: [CaptureNode()], args=argv, num_threads=6)


if __name__ == "__main__":
    sys.exit(main())
