"""``cosmos-ros make-tiny-model``, ``cosmos-ros predict`` and ``cosmos-ros model verify``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosmos_ros.cli import CliError

if TYPE_CHECKING:  # the runtime imports torch and diffusers: only when a command needs them
    from cosmos_ros.model.runtime import CosmosRuntime, PredictionResult

_D = "(default: %(default)s)"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "make-tiny-model",
        help="write a tiny random-weight Cosmos Predict 2.5 model (tests, demos, CI)",
        description=(
            "Write a tiny random-weight pipeline in the on-disk layout of nvidia/Cosmos-Predict2.5-2B "
            "(diffusers/base/post-trained): transformer, Wan VAE, Qwen2.5-VL text encoder, a locally "
            "built tokenizer with a chat template, UniPC scheduler. Same seed => identical files."
        ),
    )
    p.add_argument("directory", metavar="DIR", help="folder to create (must not exist or be empty)")
    p.add_argument("--seed", type=int, default=0, help=f"weight seed {_D}")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder (default: refuse)")
    p.set_defaults(func=_make_tiny_model)

    p = subparsers.add_parser(
        "predict",
        help="predict a video from an image/video file or a bag frame + prompt (+ adapter) -> mp4",
        description=(
            "Run Cosmos Predict 2.5 on conditioning frames and write an H.264 mp4 plus "
            "<stem>_first.png, <stem>_last.png and <stem>.json (metadata). Frames are fitted to the "
            "model size by --fit (crop: resize to cover + centre crop; letterbox: fit + black bars). "
            "Presets: full = 432x768, 93 frames, 36 steps, guidance 7 (the recipe); full-720p = "
            "704x1280; preview = 432x768, 29 frames, 12 steps. A tiny test model scales them down."
        ),
    )
    p.add_argument("--model", required=True, help="local diffusers model directory")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--image", help="conditioning image file (image-to-world)")
    src.add_argument("--video", help="conditioning video file; its last 5 frames condition (video-to-world)")
    src.add_argument("--bag", help="ROS 1 .bag / ROS 2 bag folder; one frame of --topic conditions")
    p.add_argument("--topic", help="image topic in --bag (default: the busiest image topic)")
    p.add_argument("--bag-index", type=int, default=0, help=f"which message of --topic to use {_D}")
    p.add_argument("--prompt", required=True, help="what should happen in the video")
    p.add_argument("--negative-prompt", default=None, help="(default: the pipeline's stock negative prompt)")
    p.add_argument(
        "--adapter",
        help="LoRA/DoRA adapter folder or .safetensors file, or a registry reference NAME[@VERSION|@status] "
        "(any status; its hash and base are checked) (default: base model)",
    )
    p.add_argument(
        "--registry",
        metavar="DIR",
        default=None,
        help="registry for --adapter references "
        "(default: $COSMOS_ROS_REGISTRY or ~/.cache/cosmos_ros/registry)",
    )
    p.add_argument(
        "-o", "--output", required=True, help="output .mp4 path (its folder is created if missing)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing <stem>.mp4, .json, _first.png or _last.png (default: refuse)",
    )
    p.add_argument("--preset", default="full", choices=["full", "full-720p", "preview"], help=_D)
    p.add_argument("--num-frames", type=int, default=None, help="4k+1 frames (default: from preset)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: from preset)")
    p.add_argument(
        "--guidance", type=float, default=None, help="guidance scale, finite and >= 0 (default: from preset)"
    )
    p.add_argument("--height", type=int, default=None, help="multiple of 16 (default: from preset)")
    p.add_argument("--width", type=int, default=None, help="multiple of 16 (default: from preset)")
    p.add_argument("--fit", default="crop", choices=["crop", "letterbox"], help=_D)
    p.add_argument("--seed", type=int, default=0, help=_D)
    p.add_argument(
        "--device",
        default="auto",
        help="torch device: auto, cuda, cuda:1, cpu (default: auto = cuda if available)",
    )
    p.add_argument(
        "--dtype",
        default="auto",
        help="auto | float32 | bfloat16 | float16 (default: auto = bfloat16 on a GPU, float32 on the CPU)",
    )
    p.add_argument("--safety-checker", default="auto", choices=["auto", "required", "off"], help=_D)
    p.add_argument("--cpu-offload", action="store_true", help="move components to the GPU only while used")
    p.add_argument("--prompt-cache", default=None, help="folder for cached prompt embeddings (default: none)")
    p.add_argument(
        "--engine",
        choices=("fast", "stock"),
        default="fast",
        help="fast: merged adapters + lean loop (default); stock: the diffusers pipeline call",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile each transformer block (GPU)")
    p.add_argument(
        "--approximate",
        action="store_true",
        help="opt-in approximate mode: about 2x fewer transformer forwards, output differs",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary on stdout (files written, frames, size, fps, seconds, adapter used, "
        "settings) instead of the video's path; progress and errors stay on stderr, exit codes "
        "unchanged (default: text)",
    )
    p.set_defaults(func=_predict)

    model = subparsers.add_parser(
        "model",
        help="check a local diffusers model folder against the sha256 of its files (verify)",
        description="Check a local diffusers model folder.",
    )
    sub = model.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    p = sub.add_parser(
        "verify",
        help="hash every file of MODEL against its manifest; name each file that differs",
        description=(
            "Hash every file of MODEL (model_index.json and the component folders) in full and compare "
            "with a manifest of sha256 hashes and sizes; exit 1 naming each file that differs. Record the "
            "manifest once, with --write, from weights you trust (right after downloading them). Without a "
            "manifest, a folder in the Hugging Face hub cache is checked against its blob names (sha256). "
            "Every model load also checks the manifest's file sizes (cheap); full hashes only here. "
            "Exit status: 0 all match, 1 a file differs or there is nothing to compare with."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="local diffusers model folder")
    p.add_argument(
        "--manifest",
        metavar="FILE",
        default=None,
        help="manifest file, e.g. for a read-only model folder (default: MODEL/cosmos_ros_manifest.json)",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="record the manifest from the files as they are now, replacing one that is there "
        "(default: compare with it)",
    )
    p.set_defaults(func=_verify_model)


def _make_tiny_model(args: argparse.Namespace) -> int:
    from cosmos_ros.model.tiny import make_tiny_model

    try:
        path = make_tiny_model(args.directory, seed=args.seed, overwrite=args.overwrite)
    except FileExistsError as exc:
        raise CliError(str(exc)) from exc
    print(path)
    return 0


def _verify_model(args: argparse.Namespace) -> int:
    from cosmos_ros.model.manifest import ManifestError, model_files, verify, write_manifest
    from cosmos_ros.progress import Stopwatch, TqdmProgress

    model = Path(args.model).expanduser()
    if not (model / "model_index.json").is_file():
        what = (
            "is a file"
            if model.is_file()
            else "has no model_index.json"
            if model.is_dir()
            else "does not exist"
        )
        raise CliError(f"model folder {model} {what}; give a local diffusers model folder")
    progress = TqdmProgress(unit="B", unit_scale=True)
    done = [0]

    def on_bytes(count: int) -> None:
        done[0] += count
        watch.report(done[0])

    try:
        watch = Stopwatch(progress, "sha256", sum((model / rel).stat().st_size for rel in model_files(model)))
        if args.write:
            path = write_manifest(model, args.manifest, on_bytes)
            progress.close()
            print(f"recorded {path}: sha256 and size of {len(model_files(model))} files of {model}")
            return 0
        report = verify(model, args.manifest, on_bytes)
    except ManifestError as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"{model}: {exc}") from exc
    finally:
        progress.close()
    if report.ok:
        print(f"{model}: {report.checked} files match {report.manifest} (sha256)")
        return 0
    for item in report.mismatches:
        print(f"  {item.path}: {item.problem}")
    names = ", ".join(item.path for item in report.mismatches)
    raise CliError(f"{model}: {len(report.mismatches)} file(s) differ from {report.manifest}: {names}")


def _load_frames(args: argparse.Namespace) -> list:
    import numpy as np

    if args.image:
        import cv2

        img = cv2.imread(args.image, cv2.IMREAD_COLOR)
        if img is None:
            raise CliError(f"cannot read image {args.image}")
        return [np.ascontiguousarray(img[:, :, ::-1])]
    if args.video:
        from cosmos_ros.media.video import read_video

        try:
            frames, _ = read_video(args.video)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        return list(frames[-5:])
    return [_bag_frame(Path(args.bag), args.topic, args.bag_index)]


def _bag_frame(bag: Path, topic: str | None, index: int):
    from cosmos_ros.bag_tools.readers import BagError, normalize_msgtype, open_bag
    from cosmos_ros.media.ros_image import message_to_rgb

    image_types = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"}
    if index < 0:
        raise CliError(f"--bag-index must be >= 0, got {index}")
    try:
        with open_bag(bag) as reader:  # names what a file that is no bag holds
            images = [c for c in reader.connections if normalize_msgtype(c.msgtype) in image_types]
            conns = [c for c in images if c.topic == topic] if topic else images
            if not conns:
                listed = ", ".join(sorted({f"{c.topic} ({c.msgcount})" for c in images})) or "none"
                wanted = f"image topic {topic}" if topic else "image topic"
                raise CliError(f"{bag}: no {wanted}; image topics in the bag (messages): {listed}")
            if not topic:
                conns = [max(conns, key=lambda c: c.msgcount)]
            count = sum(c.msgcount for c in conns)
            if index >= count:
                raise CliError(
                    f"{bag}: topic {conns[0].topic} has {count} image message(s); --bag-index accepts "
                    f"0..{count - 1}, got {index}"
                )
            for i, (conn, _, raw) in enumerate(reader.messages(connections=conns)):
                if i == index:
                    msg = reader.deserialize(raw, conn.msgtype)
                    return message_to_rgb(msg)  # honours row padding (step), unlike rosbags-image
    except CliError:
        raise
    except BagError as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:
        raise CliError(f"cannot read {bag}: {exc}") from exc
    raise CliError(f"{bag}: topic {conns[0].topic} ended before message {index}")


def _predict(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from cosmos_ros.atomic import atomic_write_text
    from cosmos_ros.model.loading import ModelDirectoryError, resolve_device_and_dtype, validate_model_dir
    from cosmos_ros.model.prompt_cache import check_cache_dir
    from cosmos_ros.model.runtime import CosmosRuntime, check_settings

    output = _check_output(Path(args.output))
    try:
        device, dtype = resolve_device_and_dtype(args.device, args.dtype)
    except ValueError as exc:
        raise CliError(f"--{exc}") from exc
    try:  # everything that can be checked without the model, before the minute it takes to load
        validate_model_dir(args.model)
        check_settings(
            args.model, args.preset, num_frames=args.num_frames, steps=args.steps, guidance=args.guidance,
            height=args.height, width=args.width, fit=args.fit, seed=args.seed,
        )  # fmt: skip
        if args.prompt_cache:
            check_cache_dir(args.prompt_cache)
    except (ValueError, FileNotFoundError) as exc:
        raise CliError(_as_option(str(exc))) from exc
    frames = _load_frames(args)
    is_ref = args.adapter and not Path(args.adapter).expanduser().exists()
    adapter = _registry_adapter(args) if is_ref else None
    _refuse_overwrite(output, args.overwrite)
    try:
        rt = CosmosRuntime.load(args.model, device=device, dtype=dtype, safety_checker=args.safety_checker,
                                prompt_cache_dir=args.prompt_cache, cpu_offload=args.cpu_offload,
                                engine=args.engine, compile=args.compile)  # fmt: skip
    except (ModelDirectoryError, RuntimeError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    try:
        result = _run_prediction(rt, frames, args, adapter)
        out = result.save(output)
        atomic_write_text(out.with_suffix(".json"), json.dumps(result.metadata, indent=2, default=str))
    finally:
        rt.close()
    if args.json:
        registry = None
        if adapter is not None:  # --adapter was a registry reference
            from cosmos_ros.registry import default_registry_path

            registry = str(Path(args.registry).expanduser() if args.registry else default_registry_path())
        print(json.dumps(predict_summary(out, result, args.adapter, registry), indent=2))
    else:
        print(out)
    return 0


def predict_summary(
    video: Path, result: PredictionResult, adapter: str | None, registry: str | None
) -> dict[str, Any]:
    """The figures of one prediction as one JSON-ready mapping (``predict --json``).

    ``adapter`` is what --adapter named (null: the base alone), ``adapter_id`` what it resolved to
    (the registry version for a reference), ``registry`` the registry it came from (null for a
    folder or file); ``seconds`` is the runtime's total (prompt encoding + generation).
    """
    metadata = result.metadata
    count, height, width = (int(n) for n in result.frames.shape[:3])
    timings = {key: float(value) for key, value in metadata.get("timings", {}).items()}
    settings = metadata.get("settings", {})
    return {
        "ok": True,
        "video": str(video),
        "files": [str(path) for path in output_files(video)],
        "metadata": str(video.with_suffix(".json")),
        "frames": count,
        "height": height,
        "width": width,
        "fps": float(result.fps),
        "seconds": timings.get("total_s"),
        "timings": timings,
        "adapter": adapter,
        "adapter_id": metadata.get("adapter_id"),
        "registry": registry,
        "seed": metadata.get("seed"),
        "preset": settings.get("preset"),
        "steps": settings.get("steps"),
        "engine": settings.get("engine"),
        "device": settings.get("device"),
        "dtype": settings.get("dtype"),
    }


#: Request settings (as the runtime's errors name them) -> the predict option that sets them.
_OPTIONS = {"num_frames": "--num-frames", "steps": "--steps", "guidance": "--guidance", "height": "--height",
            "width": "--width", "fit": "--fit", "seed": "--seed"}  # fmt: skip


def _as_option(message: str) -> str:
    """A settings error that starts with the runtime's name for a value, given the option's name instead."""
    name, _, rest = message.partition(" ")
    return f"{_OPTIONS[name]} {rest}" if name in _OPTIONS else message


def _check_output(path: Path) -> Path:
    """The mp4 path, checked before any work: a folder or another suffix would fail only at the end."""
    path = path.expanduser()
    if path.is_dir() or str(path).endswith(os.sep):
        raise CliError(f"-o {path} is a folder; give the video's file name, e.g. {path / 'prediction.mp4'}")
    if path.suffix.lower() != ".mp4":
        raise CliError(f"-o {path}: the output is an H.264 mp4; give a path ending in .mp4")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise CliError(f"-o {path}: {blocker} is a file, not a folder; give a path in a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"-o {path}: cannot create its folder {path.parent} ({exc.strerror or exc})") from exc
    return path


def output_files(video: Path) -> list[Path]:
    """Every file ``predict -o VIDEO`` writes: the mp4, its first and last frames, its metadata."""
    return [
        video,
        video.with_name(f"{video.stem}_first.png"),
        video.with_name(f"{video.stem}_last.png"),
        video.with_suffix(".json"),
    ]


def _refuse_overwrite(video: Path, overwrite: bool) -> None:
    """Refuse to replace files of an earlier prediction (or the user's own) unless --overwrite.

    Why: -o names only the mp4, so an existing ``<stem>.json`` beside it was replaced unasked.
    """
    existing = [p for p in output_files(video) if p.exists()]
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing)
        raise CliError(
            f"-o {video}: {names} already exist{'s' if len(existing) == 1 else ''} (predict writes "
            f"{video.stem}.mp4, {video.stem}_first.png, {video.stem}_last.png and {video.stem}.json); pass "
            "--overwrite to replace them, or choose another -o"
        )


def _registry_adapter(args: argparse.Namespace):
    """Resolve --adapter as a registry reference against this base, before the model loads."""
    from cosmos_ros.model.fingerprint import model_fingerprint
    from cosmos_ros.registry import RegistryError, default_registry_path, open_registry

    registry = Path(args.registry).expanduser() if args.registry else default_registry_path()
    if not registry.is_dir():
        raise CliError(
            f"--adapter {args.adapter}: no such file or folder, and no registry at {registry} to look it "
            "up in (give an adapter folder / .safetensors file, or --registry DIR)"
        )
    try:
        base = model_fingerprint(args.model)
        with open_registry(registry) as reg:
            loadable = reg.resolve_for_loading(args.adapter, base_fingerprint=base, allow_unapproved=True)
    except (RegistryError, FileNotFoundError, ValueError) as exc:
        raise CliError(f"--adapter {args.adapter} (registry {registry}): {exc}") from exc
    record = loadable.record
    where = sys.stderr if getattr(args, "json", False) else sys.stdout  # stdout holds only the JSON
    print(f"adapter {record.adapter_id} ({record.status}) from registry {registry}", file=where)
    return loadable


def _run_prediction(
    rt: CosmosRuntime, frames: list, args: argparse.Namespace, registry_adapter=None
) -> PredictionResult:
    """``rt.predict`` with the CLI's arguments; expected failures become one-line CliErrors.

    ``registry_adapter``: a resolved registry record (``LoadableAdapter``) for --adapter; its bytes
    are re-verified as they are read.
    """
    from cosmos_ros.model.adapters import AdapterIncompatible
    from cosmos_ros.model.runtime import PredictionNotFinite, PredictionOutOfMemory
    from cosmos_ros.progress import TqdmProgress

    progress = TqdmProgress(unit="step")
    try:
        if registry_adapter is not None:
            with registry_adapter.verified_file() as weights:
                rt.load_adapter("adapter", weights, adapter_id=registry_adapter.record.adapter_id)
        elif args.adapter:
            rt.load_adapter("adapter", args.adapter)
        return rt.predict(
            frames, args.prompt, adapter="adapter" if args.adapter else None, num_frames=args.num_frames,
            preset=args.preset, steps=args.steps, guidance=args.guidance, seed=args.seed, height=args.height,
            width=args.width, fit=args.fit, negative_prompt=args.negative_prompt, on_step=progress,
            approximate=args.approximate,
        )  # fmt: skip
    except PredictionOutOfMemory as exc:
        # The runtime's advice names Python arguments; give the flags that do the same here.
        raise CliError(
            f"{exc}\n  on the command line: --preset preview, fewer --num-frames, a smaller --height/--width "
            "or --cpu-offload"
        ) from exc
    except (AdapterIncompatible, PredictionNotFinite, ValueError, FileNotFoundError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        progress.close()
