"""Generation node: a lifecycle node serving the ``predict_video`` action with the Cosmos runtime.

Lifecycle (llama_ros style): parameters are read on configure, the model is loaded on activate
and freed on deactivate/cleanup. With ``autostart`` (default) the node configures and activates
itself once it spins, so a plain ``ros2 run cosmos_ros generation_node`` serves goals.

Interfaces (relative names, so a launch ``namespace`` prefixes them):

- action ``predict_video`` (cosmos_ros_interfaces/PredictVideo): one generation at a time. The
  goal callback REJECTS goals while the node is not active, and while it is busy as
  ``busy_policy`` says (``reject``; ``queue`` up to ``max_queued_goals``; ``preempt`` the running
  goal): see goal_admission.py. A rejection carries no reason, so it is logged and kept in
  ``/diagnostics`` (``last_rejection``). Feedback walks the stages in order: ``queued`` (only
  while waiting behind another goal), ``encode`` (start, end), ``denoise`` (every step),
  ``decode`` (start, end), ``save``, ``publish``. A client's cancel is honoured between steps and
  ends CANCELED; a goal the node stops (deactivate, shutdown, preemption) ends ABORTED with the
  reason in ``result.message``.
- service ``~/list_adapters`` (ListAdapters); parameter ``adapter`` switches the active adapter
  at run time (validated: unknown/refused adapters, and, while the model is loaded, adapters whose
  shapes/target modules do not fit it, are rejected and the previous one stays).
- topics ``~/predicted_video`` and ``~/side_by_side`` (sensor_msgs/Image rgb8, RELIABLE +
  TRANSIENT_LOCAL depth 1), played at the video fps (parameter ``fps``) ``preview_loops`` times;
  frame i is stamped ``newest conditioning stamp + i/fps`` with the conditioning frame's frame_id.
  ``~/predicted_video/compressed``: the same frames as jpeg CompressedImage (``preview_jpeg_quality``).
- ``/diagnostics`` (diagnostic_msgs/DiagnosticArray) every ``diagnostics_period`` seconds.
- ``camera_topic`` frames are checked as they arrive (encoding, and data at least step * height
  bytes); a camera sending unusable frames is logged once and reported in ``/diagnostics``.

Generation runs in the action's own callback group on an executor thread of its own; services,
parameters and cancels are served by the other threads meanwhile. Parameters:
config/generation_node.yaml.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cosmos_ros_interfaces.action import PredictVideo
from cosmos_ros_interfaces.msg import AdapterInfo
from cosmos_ros_interfaces.srv import ListAdapters
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from cosmos_ros.nodes.adapter_catalog import (
    AdapterCatalog,
    AdapterRejected,
    ResolvedAdapter,
    verified_weights,
)
from cosmos_ros.nodes.conversions import (
    ArrivalCheck,
    UnsupportedImage,
    image_msg_to_rgb,
    rgb_to_image_msg,
    rgb_to_jpeg_msg,
    shifted_header,
    stamp_to_seconds,
)
from cosmos_ros.nodes.frame_buffer import FrameBuffer, FrameRefused
from cosmos_ros.nodes.goal_admission import BUSY_POLICIES, GoalAdmission, Job
from cosmos_ros.nodes.qos import camera_qos, preview_qos
from cosmos_ros.progress import ProgressEvent

#: Parameter name -> (default, description). config/generation_node.yaml documents the same.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "model_path": ("", "local diffusers directory of Cosmos-Predict2.5 (required)"),
    "device": ("auto", "torch device: auto (cuda if available, else cpu), cuda, cuda:1, cpu"),
    "dtype": (
        "auto",
        "weights dtype: auto (bfloat16 on a GPU, float32 on the CPU), bfloat16, float16, float32",
    ),
    "cpu_offload": (False, "keep components on the CPU, move each to the GPU only while it runs"),
    "safety_checker": ("auto", "auto | required | off (off logs a warning; see cosmos_ros/model/safety.py)"),
    "compile": (False, "torch.compile each transformer block (GPU; kernels cached across restarts)"),
    "compile_cache_dir": (
        "",
        "compile cache folder ('' = $TORCHINDUCTOR_CACHE_DIR if set, else ~/.cache/cosmos_ros/torch_compile)",
    ),
    "attention_backend": ("", "diffusers attention backend, e.g. _native_cudnn ('' = PyTorch's choice)"),
    "warmup": (True, "run one denoising step at the preset size on activate (compiles before requests)"),
    "prompt_cache_dir": ("", "folder caching prompt embeddings ('' = in memory only)"),
    "registry_path": ("", "adapter registry ('' = none: only adapter folder paths are accepted)"),
    "allow_unapproved": (False, "also load draft/candidate adapters and plain folders beside a registry"),
    "adapter": ("", "active adapter: '' or none = base model, name, name@3, name@approved, or a folder"),
    "preset": ("full", "default preset: full, full-720p, preview"),
    "num_frames": (0, "default frames to predict, 4k+1 (0 = preset)"),
    "steps": (0, "default denoising steps (0 = preset)"),
    "guidance": (-1.0, "default guidance scale (< 0 = preset)"),
    "fit": ("crop", "how conditioning frames are fitted to the model size: crop or letterbox"),
    "prompt": ("", "prompt used when a goal carries none ('' = goals must carry one)"),
    "output_dir": ("~/.cache/cosmos_ros/predictions", "where the predicted mp4 files are written"),
    "fps": (0.0, "fps of the written mp4, result.fps and the preview topics (0 = the preset's fps)"),
    "camera_topic": ("", "camera the node buffers for goals without conditioning frames ('' = none)"),
    "camera_qos": ("sensor_data", "QoS of camera_topic: sensor_data, reliable, best_effort, system_default"),
    "max_frame_age": (1.0, "seconds; camera_topic frames older than this are refused (0 = no limit)"),
    "busy_policy": (
        "reject",
        "a goal arriving while one runs: reject | queue (up to max_queued_goals wait) | preempt (stops "
        "the running goal, which ends ABORTED)",
    ),
    "max_queued_goals": (1, "with busy_policy queue: goals that may wait while one runs; more are rejected"),
    "preview_loops": (1, "times the preview topics play each prediction (0 = do not publish)"),
    "publish_side_by_side": (True, "also publish '~/side_by_side' (input | prediction)"),
    "preview_jpeg_quality": (
        80,
        "also publish '~/predicted_video/compressed' (jpeg CompressedImage, image_transport's name; "
        "about 1/20 of the raw bytes) at this quality 1..100 (0 = off)",
    ),
    "diagnostics_period": (1.0, "seconds between /diagnostics messages (0 = off)"),
    "autostart": (True, "configure and activate on start-up (no lifecycle manager needed)"),
}


#: Parameters that take effect for the next goal when set at run time (the others on configure).
LIVE_PARAMETERS = (
    "busy_policy",
    "max_queued_goals",
    "preview_loops",
    "publish_side_by_side",
    "prompt",
    "fps",
)


def _bad_policy(value: object) -> str:
    return f"busy_policy must be one of {', '.join(BUSY_POLICIES)}, got {value!r}"


class GoalFailed(Exception):
    """A request the node cannot serve; its message goes into ``result.message``."""


class GenerationNode(LifecycleNode):
    def __init__(self, node_name: str = "generation_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.cfg: dict[str, Any] = {}
        self.runtime: Any = None
        self.catalog: AdapterCatalog | None = None
        self.base_fingerprint = ""
        self._active_ref = ""  # the validated value of the `adapter` parameter
        self._active_resolved: ResolvedAdapter | None = None
        self._loaded_names: dict[str, str] = {}  # adapter_id -> runtime name

        self._action_group = ReentrantCallbackGroup()
        self._service_group = ReentrantCallbackGroup()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        self._camera_group = MutuallyExclusiveCallbackGroup()

        self._admission = GoalAdmission()
        self._preview_stop = threading.Event()
        self._preview_thread: threading.Thread | None = None
        self._camera: FrameBuffer | None = None
        self._camera_check = ArrivalCheck()
        self._camera_sub: Any = None
        self._preview_pub: Any = None
        self._jpeg_pub: Any = None
        self._side_pub: Any = None
        self.stats = {"goals": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "stopped": 0, "rejected": 0}
        self.last_latency = float("nan")
        self.last_message = ""
        # torch as this node's own import left it: a module another thread is still importing
        # has no ``torch.cuda`` yet, and the diagnostics timer runs beside a lifecycle manager's
        # activate (change_state), which imports torch.
        self._torch: Any = None

        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._action = ActionServer(
            self,
            PredictVideo,
            "predict_video",
            execute_callback=self._execute,
            goal_callback=self._on_goal,
            cancel_callback=self._on_cancel,
            callback_group=self._action_group,
        )
        self.create_service(
            ListAdapters, "~/list_adapters", self._on_list_adapters, callback_group=self._service_group
        )
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        period = float(self.get_parameter("diagnostics_period").value)
        if period > 0:
            self.create_timer(period, self.publish_diagnostics, callback_group=self._timer_group)
        if self.get_parameter("autostart").value:
            self._autostart_timer = self.create_timer(0.0, self._autostart, callback_group=self._timer_group)
        else:
            self.get_logger().info(
                "autostart is off: waiting for a lifecycle manager to configure and activate"
            )

    # ============================================================== lifecycle
    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self.destroy_timer(self._autostart_timer)
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error("autostart: configure failed; fix the parameters and configure again")
            return
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            self.get_logger().error("autostart: activate failed; the node stays inactive")
            return
        self.get_logger().info("generation_node active")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.cfg = {name: self.get_parameter(name).value for name in PARAMETERS}
        try:
            self._check_config()
        except (ValueError, OSError) as exc:
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._preview_pub = self.create_publisher(Image, "~/predicted_video", preview_qos())
        self._side_pub = self.create_publisher(Image, "~/side_by_side", preview_qos())
        if self.cfg["preview_jpeg_quality"]:
            self._jpeg_pub = self.create_publisher(
                CompressedImage, "~/predicted_video/compressed", preview_qos()
            )
        topic = self.cfg["camera_topic"]
        if topic:
            self._camera = FrameBuffer(self.resolve_topic_name(topic), 8)
            msg_type = CompressedImage if topic.endswith("/compressed") else Image
            self._camera_sub = self.create_subscription(
                msg_type,
                topic,
                self._on_camera,
                camera_qos(self.cfg["camera_qos"]),
                callback_group=self._camera_group,
            )
        self.get_logger().info(
            f"configured: model {self.cfg['model_path']}, adapter {self._active_ref or 'none'}"
        )
        return TransitionCallbackReturn.SUCCESS

    def _check_config(self) -> None:
        from cosmos_ros.model.fingerprint import model_fingerprint

        model_path = Path(str(self.cfg["model_path"])).expanduser()
        if not str(self.cfg["model_path"]):
            raise ValueError(
                "parameter model_path is empty: set it to a local Cosmos-Predict2.5 diffusers folder"
            )
        if not model_path.is_dir():
            raise ValueError(f"model_path {model_path} does not exist or is not a directory")
        if not (model_path / "model_index.json").is_file():
            raise ValueError(f"model_path {model_path} has no model_index.json: not a diffusers model folder")
        self.cfg["model_path"] = str(model_path)
        if self.cfg["max_queued_goals"] < 0 or self.cfg["preview_loops"] < 0:
            raise ValueError("max_queued_goals and preview_loops must be >= 0")
        if not 0 <= self.cfg["preview_jpeg_quality"] <= 100:
            raise ValueError(
                f"preview_jpeg_quality must be 0 (off) or 1..100, got {self.cfg['preview_jpeg_quality']}"
            )
        if self.cfg["busy_policy"] not in BUSY_POLICIES:
            raise ValueError(_bad_policy(self.cfg["busy_policy"]))
        if float(self.cfg["fps"]) < 0:
            raise ValueError(f"fps must be >= 0 (0 = the preset's fps), got {self.cfg['fps']}")
        out = Path(str(self.cfg["output_dir"])).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        self.cfg["output_dir"] = str(out)
        self.base_fingerprint = model_fingerprint(model_path)
        if self.catalog is not None:
            self.catalog.close()
        try:
            self.catalog = AdapterCatalog(
                str(self.cfg["registry_path"]),
                allow_unapproved=bool(self.cfg["allow_unapproved"]),
                base_fingerprint=self.base_fingerprint,
            )
        except Exception as exc:
            raise ValueError(f"registry {self.cfg['registry_path']}: {exc}") from exc
        try:
            self._active_resolved = self.catalog.resolve(str(self.cfg["adapter"]))
        except AdapterRejected as exc:
            raise ValueError(str(exc)) from exc
        self._active_ref = str(self.cfg["adapter"])

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        from cosmos_ros.model.loading import resolve_device_and_dtype
        from cosmos_ros.nodes.gpu_group import load_runtime  # CosmosRuntime.load, or over a torchrun group

        try:
            device, dtype = resolve_device_and_dtype(self.cfg["device"], self.cfg["dtype"])
        except ValueError as exc:
            self.get_logger().error(f"activate failed: parameter {exc}")
            return TransitionCallbackReturn.FAILURE
        try:
            started = time.monotonic()
            self.runtime = load_runtime(
                self.cfg["model_path"],
                device=device,
                dtype=dtype,
                safety_checker=self.cfg["safety_checker"],
                prompt_cache_dir=self.cfg["prompt_cache_dir"] or None,
                cpu_offload=bool(self.cfg["cpu_offload"]),
                compile=bool(self.cfg["compile"]),
                compile_cache_dir=self.cfg["compile_cache_dir"] or None,
                attention_backend=self.cfg["attention_backend"] or None,
            )
            self._torch = sys.modules.get("torch")  # fully imported now: load has returned
            if self.cfg["warmup"]:
                warm_s = self.runtime.warmup(self.cfg["preset"])
                self.get_logger().info(f"warm-up step at preset {self.cfg['preset']!r}: {warm_s:.1f} s")
            self._loaded_names.clear()
            self._apply_adapter(self._active_resolved)
        except Exception as exc:
            self.get_logger().error(f"activate failed: could not load {self.cfg['model_path']}: {exc}")
            self._free_runtime()
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"model loaded on {device} in {time.monotonic() - started:.1f} s")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_all_goals("the node is deactivating")
        self._free_runtime()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_interfaces()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_all_goals("the node is shutting down")
        self._free_runtime()
        self._release_interfaces()
        return TransitionCallbackReturn.SUCCESS

    def _release_interfaces(self) -> None:
        self._preview_stop.set()
        for pub in (self._preview_pub, self._side_pub, self._jpeg_pub):
            if pub is not None:
                self.destroy_publisher(pub)
        self._preview_pub = self._side_pub = self._jpeg_pub = None
        if self._camera_sub is not None:
            self.destroy_subscription(self._camera_sub)
            self._camera_sub = self._camera = None
        if self.catalog is not None:
            self.catalog.close()
            self.catalog = None

    def _free_runtime(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        self._loaded_names.clear()

    def _stop_all_goals(self, reason: str) -> None:
        """End every running and waiting goal ABORTED with ``reason`` (within a denoising step)."""
        if not self._admission.stop_all(reason):
            self.get_logger().error(f"{reason}: a goal did not stop within 30 s; going on without it")

    def close(self) -> None:
        """Free everything (called by the spin helper on exit)."""
        self._stop_all_goals("shutting down")
        self._free_runtime()
        self._preview_stop.set()

    @property
    def is_active(self) -> bool:
        return self.runtime is not None and self._state_machine.current_state[1] == "active"

    def _inactive_reason(self) -> str | None:
        """None while goals can be served, else why not (for a rejection or an abort)."""
        if self.is_active:
            return None
        state = self._state_machine.current_state[1]
        return f"the generation node is not active (state: {state}); goals are served only while active"

    # ============================================================== adapters
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name == "adapter":
                ref = str(param.value)
                if self.catalog is None:  # not configured yet: validated on configure
                    continue
                try:
                    resolved = self.catalog.resolve(ref)
                    self._check_fits(resolved)
                except (ValueError, OSError) as exc:  # AdapterRejected, AdapterIncompatible, I/O
                    self.get_logger().warning(
                        f"adapter {ref!r} rejected; keeping {self._active_ref or 'none'}: {exc}"
                    )
                    return SetParametersResult(successful=False, reason=str(exc))
                self._active_ref, self._active_resolved = ref, resolved
                self.get_logger().info(
                    f"active adapter for the next goals: {resolved.adapter_id if resolved else 'none'}"
                )
            elif (
                param.name in ("max_queued_goals", "preview_loops", "num_frames", "steps", "fps")
                and param.value < 0
            ):
                hint = " (0 = the preset's fps)" if param.name == "fps" else ""
                return SetParametersResult(
                    successful=False, reason=f"{param.name} must be >= 0{hint}, got {param.value}"
                )
            elif param.name == "busy_policy" and param.value not in BUSY_POLICIES:
                return SetParametersResult(successful=False, reason=_bad_policy(param.value))
            elif param.name in LIVE_PARAMETERS and self.cfg:
                self.cfg[param.name] = param.value  # take effect for the next goal
        return SetParametersResult(successful=True)

    def _check_fits(self, resolved: ResolvedAdapter | None) -> None:
        """Run the runtime's own pre-load check now, so a misfit is refused before it replaces the old one.

        Without a loaded model (configure, inactive) there is nothing to check against; activate
        loads the adapter and fails on a misfit instead.
        """
        runtime = self.runtime
        if resolved is None or runtime is None or resolved.adapter_id in self._loaded_names:
            return
        from cosmos_ros.model.adapters import AdapterIncompatible

        try:
            with verified_weights(resolved) as path:
                runtime.check_adapter(path)
        except AdapterIncompatible as exc:  # name the reference, not a temporary file
            raise AdapterRejected(f"adapter {resolved.adapter_id} does not fit the model: {exc}") from exc

    def _apply_adapter(self, resolved: ResolvedAdapter | None) -> str:
        """Make ``resolved`` the runtime's active adapter (loading it once); returns its adapter_id."""
        if resolved is None:
            self.runtime.set_active_adapter(None)
            return ""
        name = self._loaded_names.get(resolved.adapter_id)
        if name is None:
            name = f"a{len(self._loaded_names)}"
            with verified_weights(resolved) as path:  # registry bytes re-hashed right before the load
                self.runtime.load_adapter(name, path, adapter_id=resolved.adapter_id)
            self._loaded_names[resolved.adapter_id] = name
        self.runtime.set_active_adapter(name)
        return resolved.adapter_id

    def _on_list_adapters(
        self, request: ListAdapters.Request, response: ListAdapters.Response
    ) -> ListAdapters.Response:
        active_id = self._active_resolved.adapter_id if self._active_resolved else ""
        rows: dict[str, dict[str, Any]] = {}
        try:
            for row in self.catalog.listing(request.name_filter) if self.catalog else []:
                rows[row["adapter_id"]] = row
        except Exception as exc:
            response.success, response.message = False, f"registry listing failed: {exc}"
            return response
        extra = [self._active_resolved] if self._active_resolved else []
        for resolved in extra:
            if resolved.adapter_id not in rows and request.name_filter in resolved.name:
                rows[resolved.adapter_id] = {
                    "name": resolved.name,
                    "version": resolved.version,
                    "adapter_id": resolved.adapter_id,
                    "status": resolved.status,
                    "adapter_type": resolved.adapter_type,
                    "rank": resolved.rank,
                    "base_fingerprint": resolved.base_fingerprint,
                }
        for adapter_id in self._loaded_names:
            if adapter_id not in rows and request.name_filter in adapter_id:
                rows[adapter_id] = {"name": adapter_id, "adapter_id": adapter_id, "status": "unregistered"}
        response.adapters = [
            AdapterInfo(
                **{k: v for k, v in row.items()},
                loaded=row["adapter_id"] in self._loaded_names,
                active=row["adapter_id"] == active_id,
            )
            for row in rows.values()
        ]
        response.active_adapter = active_id
        response.success = True
        response.message = f"{len(response.adapters)} adapter(s)"
        return response

    # ============================================================== camera
    def _on_camera(self, msg: Image | CompressedImage) -> None:
        camera = self._camera
        if camera is None:
            return
        reason = self._camera_check.check(camera.topic, msg)
        if reason is not None:
            self.get_logger().warning(f"{camera.topic}: unusable frame: {reason}")
        camera.push(msg, stamp_to_seconds(msg.header.stamp), self.get_clock().now().nanoseconds / 1e9)

    # ============================================================== goals
    def _on_goal(self, _goal: PredictVideo.Goal) -> GoalResponse:
        """REJECT what the node cannot serve now, so no client waits for a goal that will only abort."""
        reason = self._admission.request(
            self._inactive_reason(),
            str(self.cfg.get("busy_policy", "reject")),
            int(self.cfg.get("max_queued_goals", 0)),
        )
        if reason is None:
            return GoalResponse.ACCEPT
        self.stats["rejected"] += 1
        self.get_logger().warning(f"goal rejected: {reason}")
        return GoalResponse.REJECT

    def _on_cancel(self, handle: ServerGoalHandle) -> CancelResponse:
        self._admission.cancel(handle.goal_id.uuid.tobytes())
        return CancelResponse.ACCEPT

    def _execute(self, handle: ServerGoalHandle) -> PredictVideo.Result:
        job = Job(handle, threading.Event(), time.monotonic())
        result = PredictVideo.Result()
        self.stats["goals"] += 1

        def queued() -> None:
            handle.publish_feedback(PredictVideo.Feedback(stage="queued", elapsed=0.0))

        preempt = self.cfg.get("busy_policy") == "preempt"
        reason = self._admission.wait_turn(job, self._inactive_reason, preempt, queued)
        result.queue_seconds = time.monotonic() - job.accepted_at
        if reason is not None:  # stopped or cancelled while waiting, or the node left the active state
            result.message = reason
            self.last_message = reason
            self.get_logger().warning(f"goal {job.short_id} not run: {reason}")
            self._end_stopped(handle)
            return result
        try:
            self._generate(job, result)
            handle.succeed()
            self.stats["succeeded"] += 1
        except _Stopped as exc:
            result.message = str(exc)
            self.get_logger().warning(f"goal {job.short_id} {result.message}")
            self._end_stopped(handle)
        except Exception as exc:
            result.success = False
            result.message = str(exc) if isinstance(exc, GoalFailed) else f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"goal failed: {result.message}")
            handle.abort()
            self.stats["failed"] += 1
        finally:
            result.total_seconds = time.monotonic() - job.accepted_at
            self.last_message = result.message
            self._admission.finish(job)
        return result

    def _end_stopped(self, handle: ServerGoalHandle) -> None:
        """CANCELED when the client asked for it; ABORTED when the node stopped the goal itself.

        A goal may only become CANCELED after a cancel request (rcl refuses EXECUTING -> CANCELED).
        """
        if handle.is_cancel_requested:
            handle.canceled()
            self.stats["cancelled"] += 1
        else:
            handle.abort()
            self.stats["stopped"] += 1

    def _conditioning(self, goal: PredictVideo.Goal) -> tuple[list[np.ndarray], Header]:
        msgs: list[Any] = list(goal.conditioning_frames)
        if not msgs:
            if self._camera is None:
                raise GoalFailed(
                    "the goal has no conditioning_frames and this node buffers no camera "
                    "(set camera_topic, or send frames, e.g. through capture_node)"
                )
            try:
                now = self.get_clock().now().nanoseconds / 1e9
                msgs = [f.msg for f in self._camera.newest(1, now, float(self.cfg["max_frame_age"]))]
            except FrameRefused as exc:
                raise GoalFailed(str(exc)) from exc
        frames = []
        for i, msg in enumerate(msgs):
            try:
                frames.append(image_msg_to_rgb(msg))
            except UnsupportedImage as exc:
                raise GoalFailed(f"conditioning frame {i}: {exc}") from exc
        return frames, msgs[-1].header

    def _generate(self, job: Job, result: PredictVideo.Result) -> None:
        from cosmos_ros.model.runtime import PredictionCancelled

        goal: PredictVideo.Goal = job.handle.request
        cfg = self.cfg
        prompt = (goal.prompt or cfg["prompt"]).strip()
        if not prompt:
            raise GoalFailed(
                "empty prompt: the goal carries no prompt and the node has no default (parameter prompt)"
            )
        frames, header = self._conditioning(goal)
        if goal.adapter:
            try:
                resolved = self.catalog.resolve(goal.adapter)
            except AdapterRejected as exc:
                raise GoalFailed(str(exc)) from exc
        else:
            resolved = self._active_resolved
        try:
            result.adapter_id = self._apply_adapter(resolved)
        except AdapterRejected as exc:
            raise GoalFailed(str(exc)) from exc

        marks: dict[str, float] = {}
        total_steps = [0]

        def on_step(event: ProgressEvent) -> None:
            now = time.monotonic()
            marks.setdefault(f"first_{event.stage}", now)
            marks[f"last_{event.stage}"] = now
            if event.stage == "denoise":
                total_steps[0] = event.total
                job.last_step = event.step
            job.handle.publish_feedback(
                PredictVideo.Feedback(
                    stage=event.stage, step=event.step, total_steps=event.total, elapsed=now - job.accepted_at
                )
            )
            if job.handle.is_cancel_requested:
                job.cancel.set()

        guidance = float(goal.guidance) if goal.guidance >= 0 else float(cfg["guidance"])
        started = time.monotonic()
        try:
            prediction = self.runtime.predict(
                frames,
                prompt,
                num_frames=goal.num_frames or cfg["num_frames"] or None,
                preset=goal.preset or cfg["preset"],
                steps=goal.steps or cfg["steps"] or None,
                guidance=guidance if guidance >= 0 else None,
                seed=int(goal.seed),
                fit=cfg["fit"],
                on_step=on_step,
                cancel=job.cancel,
            )
        except PredictionCancelled as exc:
            stopped = f"stopped after step {job.last_step} of {total_steps[0]}"
            if job.stop_reason is not None and not job.handle.is_cancel_requested:
                raise _Stopped(f"aborted: {job.stop_reason}; {stopped}") from exc
            requested = "before start" if job.cancel_step is None else f"during step {job.cancel_step + 1}"
            raise _Stopped(f"cancelled: requested {requested}, {stopped}") from exc
        except ValueError as exc:
            raise GoalFailed(f"invalid request: {exc}") from exc
        predicted = time.monotonic()
        self._feedback(job, "save", total_steps[0])
        path = (
            Path(cfg["output_dir"])
            / f"{time.strftime('%Y%m%d_%H%M%S')}_{job.handle.goal_id.uuid.tobytes().hex()[:8]}.mp4"
        )
        if float(cfg["fps"]) > 0:
            prediction.fps = float(cfg["fps"])  # the mp4, result.fps and the preview all use it
        prediction.save(path)
        timings = prediction.metadata.get("timings", {})
        last_step = marks.get("last_denoise", predicted)
        t, h, w = prediction.frames.shape[:3]
        result.success = True
        result.video_path = str(path)
        result.base_fingerprint = str(prediction.metadata.get("base_fingerprint") or self.base_fingerprint)
        result.frame_count, result.height, result.width = t, h, w
        result.fps = float(prediction.fps)
        result.encode_seconds = float(timings.get("encode_prompt_s", 0.0))
        result.decode_seconds = predicted - last_step
        result.denoise_seconds = max(0.0, predicted - started - result.encode_seconds - result.decode_seconds)
        result.message = (
            f"{t} frames {h}x{w} (HxW) at {prediction.fps:g} fps, adapter {result.adapter_id or 'none'}"
        )
        self.last_latency = time.monotonic() - job.accepted_at
        self.get_logger().info(f"predicted {result.message} in {self.last_latency:.2f} s -> {path}")
        self._feedback(job, "publish", total_steps[0])
        self._start_preview(
            prediction.frames, frames, header, float(prediction.fps), len(goal.conditioning_frames) or 1
        )

    def _feedback(self, job: Job, stage: str, total: int) -> None:
        job.handle.publish_feedback(
            PredictVideo.Feedback(
                stage=stage, step=total, total_steps=total, elapsed=time.monotonic() - job.accepted_at
            )
        )

    # ============================================================== preview
    def _start_preview(
        self, predicted: np.ndarray, inputs: list[np.ndarray], header: Header, fps: float, _n_cond: int
    ) -> None:
        loops = int(self.cfg["preview_loops"])
        if loops <= 0 or self._preview_pub is None:
            return
        self._preview_stop.set()
        if self._preview_thread is not None:
            self._preview_thread.join()
        self._preview_stop = threading.Event()
        side = side_by_side(inputs, predicted) if self.cfg["publish_side_by_side"] else None
        self._preview_thread = threading.Thread(
            target=self._play_preview,
            args=(predicted, side, header, fps, loops, self._preview_stop),
            name="preview",
            daemon=True,
        )
        self._preview_thread.start()

    def _play_preview(
        self,
        predicted: np.ndarray,
        side: np.ndarray | None,
        header: Header,
        fps: float,
        loops: int,
        stop: threading.Event,
    ) -> None:
        period = 1.0 / fps if fps > 0 else 0.0
        pub, side_pub, jpeg_pub = self._preview_pub, self._side_pub, self._jpeg_pub
        quality = int(self.cfg["preview_jpeg_quality"])
        for _ in range(loops):
            start = time.monotonic()
            for i, frame in enumerate(predicted):
                if stop.wait(max(0.0, start + i * period - time.monotonic())):
                    return
                frame_header = shifted_header(header, i * period)
                try:
                    pub.publish(rgb_to_image_msg(frame, frame_header))
                    if jpeg_pub is not None:
                        jpeg_pub.publish(rgb_to_jpeg_msg(frame, frame_header, quality))
                    if side is not None and side_pub is not None:
                        side_pub.publish(rgb_to_image_msg(side[i], frame_header))
                except Exception:
                    return

    # ============================================================== diagnostics
    def publish_diagnostics(self) -> None:
        state = self._state_machine.current_state[1]
        loaded = self.runtime is not None
        goals = self._admission.snapshot()
        camera = self._camera
        camera_problem = self._camera_check.problems.get(camera.topic, "") if camera is not None else ""
        message = ("busy" if goals["running"] else "ready") if loaded else f"model not loaded ({state})"
        if camera_problem:
            message += f"; camera {camera.topic}: {camera_problem}"
        status = DiagnosticStatus(
            name=f"cosmos_ros: {self.get_fully_qualified_name()}",
            hardware_id=str(self.cfg.get("device", "")),
            level=DiagnosticStatus.OK if loaded and not camera_problem else DiagnosticStatus.WARN,
            message=message,
        )
        active = self._active_resolved.adapter_id if self._active_resolved else ""
        rejected_at = self._admission.last_rejection_time
        values = {
            "lifecycle_state": state,
            "model_loaded": str(loaded).lower(),
            "model_path": str(self.cfg.get("model_path", "")),
            "active_adapter": active or "none",
            "last_latency_s": f"{self.last_latency:.3f}",
            "last_message": self.last_message,
            "busy_policy": str(self.cfg.get("busy_policy", self.get_parameter("busy_policy").value)),
            "queued_goals": str(goals["queued"]),
            # A rejected goal learns no reason over the wire: this is where its client can read it.
            "last_rejection": self._admission.last_rejection,
            "last_rejection_age_s": f"{time.time() - rejected_at:.1f}" if rejected_at else "",
            **{f"goals_{k}": str(v) for k, v in self.stats.items()},
            **gpu_memory(self._torch),
        }
        if camera is not None:
            values["camera_topic"] = camera.topic
            values["camera_frames"] = camera_problem or "ok"
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


class _Stopped(Exception):
    """The goal was stopped between steps: by its client (cancel) or by the node (``Job.stop_reason``)."""


def gpu_memory(torch: Any) -> dict[str, str]:
    """Allocated / reserved / total GPU memory in MiB, or ``n/a`` without CUDA (or before torch is loaded).

    ``torch`` is passed in rather than looked up in ``sys.modules``, where another thread's
    unfinished import would show a module without ``torch.cuda``.
    """
    if torch is None or not torch.cuda.is_available():
        return {"gpu_memory_allocated_mib": "n/a", "gpu_memory_reserved_mib": "n/a"}
    mib = 1024 * 1024
    return {
        "gpu_memory_allocated_mib": f"{torch.cuda.memory_allocated() / mib:.0f}",
        "gpu_memory_reserved_mib": f"{torch.cuda.memory_reserved() / mib:.0f}",
        "gpu_memory_total_mib": f"{torch.cuda.get_device_properties(0).total_memory / mib:.0f}",
    }


def side_by_side(inputs: list[np.ndarray], predicted: np.ndarray) -> np.ndarray:
    """[T, H, 2W, 3]: the input (the conditioning frames, then the newest held) | the prediction."""
    from cosmos_ros.media.frame_fit import fit_frame

    t, h, w = predicted.shape[:3]
    left = [fit_frame(f, h, w, "letterbox") for f in inputs]
    left += [left[-1]] * max(0, t - len(left))
    return np.concatenate([np.stack(left[:t]), predicted], axis=2)


def main(args: Sequence[str] | None = None) -> int:
    """``ros2 run cosmos_ros generation_node [--help] [--ros-args ...]``: spin until Ctrl-C.

    ``args`` defaults to ``sys.argv`` (program name first).
    """
    from cosmos_ros.nodes.gpu_group import serve_group
    from cosmos_ros.nodes.spin import parse_node_args, run_nodes

    argv = list(args) if args is not None else sys.argv
    parse_node_args("generation_node", (__doc__ or "").split("\n", 1)[0], PARAMETERS, argv)
    # under torchrun: rank 0 runs the node, the other ranks follow its runtime calls (gpu_group.py)
    return serve_group(lambda: run_nodes(lambda: [GenerationNode()], args=argv, num_threads=8))


if __name__ == "__main__":
    sys.exit(main())
