"""Time to ready of a restarted generation runtime: cold vs warm PyTorch compile cache.

The parent writes a model folder in the released layout with the real 2B transformer and Wan VAE
(random bf16 weights), then starts the same child once cold and ``--warm-starts`` times more
(default 3) with one fresh compile-cache folder. Each child does exactly what generation_node
does on activate with ``compile: true``:
``CosmosRuntime.load(..., compile=True, attention_backend="_native_cudnn")`` then
``runtime.warmup(preset)``. "Ready" is the time from process start to the end of the warm-up
step. Later children find the first one's Inductor/Triton artefacts on disk. Where the Python
in use has no bytecode for torch and writes none, the children get a bytecode cache first, as a
pip install would have (``cache_bytecode``); the results say which. ``--profile DIR`` keeps a
cProfile summary of each runtime start.

With ``--node`` each child is the real ROS 2 node process instead (``python -m
cosmos_ros.nodes.generation_node`` with ``compile: true``, ``warmup: true``, autostart), and "ready"
is when the parent, over DDS, sees the node's lifecycle state ACTIVE and its ``predict_video``
action server (activation includes the warm-up step); the time of the node's own "model loaded"
log line is kept beside it.

Usage (GPU):  python benchmarks/bench_restart.py [--node] [--warm-starts 3] --out restart.json
Sanity (CPU): python benchmarks/bench_restart.py --node --quick   (tiny model, no compilation)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import build_model_dir, median, write_results


def child(model_dir: Path, cache_dir: Path, preset: str, profile: Path | None = None) -> None:
    started = time.perf_counter()
    if profile is not None:  # where the start's Python time goes (cProfile slows it: times are not results)
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    import torch

    from cosmos_ros.model.runtime import CosmosRuntime

    imported = time.perf_counter()
    runtime = CosmosRuntime.load(
        model_dir, device="cuda", dtype="bfloat16", safety_checker="off", compile=True,
        compile_cache_dir=cache_dir, attention_backend="_native_cudnn",
    )  # fmt: skip
    loaded = time.perf_counter()
    runtime.warmup(preset)
    torch.cuda.synchronize()
    ready = time.perf_counter()
    if profile is not None:
        import io
        import pstats

        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("cumulative").print_stats(80)
        stats.sort_stats("tottime").print_stats(40)
        stats.sort_stats("cumulative").print_stats("cosmos_ros|from_pretrained|convert_frame|compile_fx", 60)
        profile.write_text(text.getvalue(), encoding="utf-8")
    print(
        "READY "
        + json.dumps(
            {
                "import_s": imported - started,
                "load_s": loaded - imported,
                "compile_and_warmup_s": ready - loaded,
                "ready_in_process_s": ready - started,
            }
        ),
        flush=True,
    )


#: What every start imports; run once before the cold start where bytecode must be cached by hand.
START_IMPORTS = (
    "import cosmos_ros.model.runtime, diffusers.pipelines.cosmos.pipeline_cosmos2_5_predict, "
    "torch._inductor.compile_fx"
)


def cache_bytecode(work: Path, node: bool) -> str:
    """Make the children import cached bytecode, as they do on any machine pip installed.

    Some images (the GPU machine of RESULTS.md's restart figures is one) ship site-packages with
    no ``__pycache__`` and write none, so every process compiles torch, transformers and diffusers
    from source again: about 9 s of each start there, which a pip install (it compiles bytecode)
    never pays. Then the children get a ``PYTHONPYCACHEPREFIX`` under ``work``, filled by one
    import run before the cold start, as pip's install step would. Returns what was found.
    """
    import torch

    from cosmos_ros.model.loading import missing_bytecode

    why = missing_bytecode()
    if why is None:
        return "present"
    site = Path(torch.__file__).parent.parent
    why = why.replace(f"{os.environ.get('PYTHONPYCACHEPREFIX', '')}{site}", "<site-packages>")
    why = why.replace(str(site), "<site-packages>")  # results name no machine's paths
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    imports = START_IMPORTS + (", cosmos_ros.nodes.generation_node" if node else "")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", imports], check=True)
    print(f"bytecode: none for torch ({why}); compiled once into {work / 'pycache'}", flush=True)
    return (
        f"missing ({why}): children use PYTHONPYCACHEPREFIX=<work>/pycache, "
        f"filled by one import run ({time.perf_counter() - t0:.1f} s) before the cold start"
    )


def start_node(
    model_dir: Path, cache_dir: Path, preset: str, quick: bool, timeout_s: float
) -> dict[str, Any]:
    """Start generation_node, wait until it is ACTIVE and serves its action; then stop it."""
    import threading

    import rclpy
    from cosmos_ros_interfaces.action import PredictVideo
    from lifecycle_msgs.srv import GetState
    from rclpy.action import ActionClient

    params = {
        "model_path": str(model_dir),
        "device": "cpu" if quick else "cuda",
        "dtype": "float32" if quick else "bfloat16",
        "safety_checker": "off",
        "compile": not quick,
        "compile_cache_dir": str(cache_dir),
        "attention_backend": "" if quick else "_native_cudnn",
        "warmup": True,
        "preset": preset,
    }
    ros_args = [f"{k}:={json.dumps(v)}" for k, v in params.items()]  # JSON is YAML: quoted strings
    cmd = [sys.executable, "-m", "cosmos_ros.nodes.generation_node", "--ros-args"]
    cmd += [x for a in ros_args for x in ("-p", a)]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log: list[tuple[float, str]] = []

    def read_log() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append((time.perf_counter() - started, line.rstrip()))

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    observer = rclpy.create_node("bench_restart_observer")
    get_state = observer.create_client(GetState, "/generation_node/get_state")
    action = ActionClient(observer, PredictVideo, "/predict_video")  # the node's relative name, no namespace
    ready_s = None
    try:
        while time.perf_counter() - started < timeout_s and proc.poll() is None:
            if get_state.wait_for_service(timeout_sec=0.2):
                future = get_state.call_async(GetState.Request())
                rclpy.spin_until_future_complete(observer, future, timeout_sec=1.0)
                state = future.result()
                if state is not None and state.current_state.label == "active" and action.server_is_ready():
                    ready_s = time.perf_counter() - started
                    break
            time.sleep(0.1)
        early_exit = proc.poll()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.join(timeout=5)
        exit_s = time.perf_counter() - started
        action.destroy()
        observer.destroy_node()
    loaded = next((t for t, line in log if "model loaded on" in line), None)
    if ready_s is None:
        tail = "\n".join(line for _, line in log[-40:])
        why = f"exited with {early_exit}" if early_exit is not None else f"was not ready in {timeout_s:.0f} s"
        raise SystemExit(f"generation_node {why}:\n{tail}")
    return {
        "ready_over_dds_s": ready_s,
        "model_loaded_log_s": loaded,
        "stopped_after_s": exit_s,
        "log": [  # the node's own lines, the temporary folder's name left out
            f"{t:7.2f} s  {line.replace(str(model_dir.parent), '<work>')}"
            for t, line in log
            if "generation_node" in line
        ][-12:],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="full", help="preset of the warm-up step (default full: 432x768x93)")
    p.add_argument("--out", default="bench_restart.json")
    p.add_argument("--child", nargs=2, metavar=("MODEL_DIR", "CACHE_DIR"), help=argparse.SUPPRESS)
    p.add_argument(
        "--profile", type=Path, metavar="DIR",
        help="runtime starts: write each child's cProfile summary to DIR/profile_<label>.txt",
    )  # fmt: skip
    p.add_argument("--node", action="store_true", help="time the real generation_node process (needs rclpy)")
    p.add_argument("--quick", action="store_true", help="tiny model on the CPU: a sanity check, not a result")
    p.add_argument("--warm-starts", type=int, default=3, help="starts after the cold one (default 3)")
    args = p.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.preset, args.profile)
        return

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench_restart_"))
    model_dir, cache_dir = work / "model", work / "compile_cache"
    t0 = time.perf_counter()
    build_model_dir(model_dir, quick=args.quick)
    results: dict[str, Any] = {"save_model_s": time.perf_counter() - t0, "starts": [], "node": args.node}
    results["bytecode"] = cache_bytecode(work, args.node)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if args.node:
        import rclpy

        rclpy.init()
        try:
            labels = ["cold_cache", *(f"warm_cache_{i + 1}" for i in range(args.warm_starts))]
            for label in labels:
                entry = {"label": label, **start_node(model_dir, cache_dir, args.preset, args.quick, 400)}
                results["starts"].append(entry)
                print(json.dumps(entry, indent=1), flush=True)
                write_results(args.out, results)
            warm = sorted(e["ready_over_dds_s"] for e in results["starts"][1:])
            results["warm_ready_median_s"] = median(warm) if warm else None
            write_results(args.out, results)
            print("warm starts ready (s):", [round(w, 2) for w in warm], flush=True)
        finally:
            rclpy.shutdown()
        return
    for label in ("cold_cache", *(f"warm_cache_{i + 1}" for i in range(args.warm_starts))):
        start = time.perf_counter()
        cmd = [sys.executable, __file__, "--child", str(model_dir), str(cache_dir), "--preset", args.preset]
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            cmd += ["--profile", str(args.profile / f"profile_{label}.txt")]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=400,
        )
        wall = time.perf_counter() - start
        line = next((x for x in proc.stdout.splitlines() if x.startswith("READY ")), None)
        if line is None:
            raise SystemExit(f"{label} start failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        entry = {"label": label, "ready_wall_s": wall, **json.loads(line[len("READY ") :])}
        results["starts"].append(entry)
        print(entry, flush=True)
        write_results(args.out, results)


if __name__ == "__main__":
    main()
