"""Time to ready of a restarted generation runtime: cold vs warm PyTorch compile cache.

The parent writes a model folder in the released layout with the real 2B transformer and Wan VAE
(random bf16 weights), then starts the same child twice with one fresh compile-cache folder. Each
child does exactly what generation_node does on activate with ``compile: true``:
``CosmosRuntime.load(..., compile=True, attention_backend="_native_cudnn")`` then
``runtime.warmup(preset)``. "Ready" is the time from process start to the end of the warm-up
step. The second child finds the first one's Inductor/Triton artefacts on disk.

Usage (GPU): python benchmarks/bench_restart.py --out restart.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import build_model_dir, write_results


def child(model_dir: Path, cache_dir: Path, preset: str) -> None:
    started = time.perf_counter()
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="full", help="preset of the warm-up step (default full: 432x768x93)")
    p.add_argument("--out", default="bench_restart.json")
    p.add_argument("--child", nargs=2, metavar=("MODEL_DIR", "CACHE_DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.preset)
        return

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench_restart_"))
    model_dir, cache_dir = work / "model", work / "compile_cache"
    t0 = time.perf_counter()
    build_model_dir(model_dir)
    results: dict[str, object] = {"save_model_s": time.perf_counter() - t0, "starts": []}
    torch.cuda.empty_cache()
    for label in ("cold_cache", "warm_cache"):
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(model_dir),
                str(cache_dir),
                "--preset",
                args.preset,
            ],
            capture_output=True,
            text=True,
            timeout=400,
        )
        wall = time.perf_counter() - start
        line = next((x for x in proc.stdout.splitlines() if x.startswith("READY ")), None)
        if line is None:
            raise SystemExit(f"{label} start failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        entry = {"label": label, "ready_wall_s": wall, **json.loads(line[len("READY ") :])}
        results["starts"].append(entry)  # type: ignore[union-attr]
        print(entry, flush=True)
        write_results(args.out, results)


if __name__ == "__main__":
    main()
