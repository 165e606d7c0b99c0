"""Time to ready of a restarted generation runtime: cold vs warm PyTorch compile cache.

The parent writes the real 2B transformer (random bf16 weights) to disk once, then starts the
same child twice with one fresh compile-cache folder. Each child does what the generation node
does on activate with ``compile: true``: load the transformer from disk, build the pipeline,
compile each block (cosmos_ros.model.fast_sampler.compile_transformer, caches under the given
folder) and run one warm-up denoising step at the preset size. "Ready" is the wall time from
process start to the end of that warm-up. The second child finds the first one's Inductor/Triton
artefacts on disk.

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

from common import build_transformer, write_results


def child(model_dir: Path, cache_dir: Path, height: int, width: int, frames: int) -> None:
    started = time.perf_counter()
    import numpy as np
    import torch
    from common import build_scheduler, build_vae, random_prompt_embeds
    from diffusers import Cosmos2_5_PredictBasePipeline, CosmosTransformer3DModel

    from cosmos_ros.model import fast_sampler as fs
    from cosmos_ros.model.safety import PassThroughSafetyChecker

    imported = time.perf_counter()
    transformer = CosmosTransformer3DModel.from_pretrained(model_dir, torch_dtype=torch.bfloat16).to("cuda")
    pipe = Cosmos2_5_PredictBasePipeline(
        text_encoder=None,
        tokenizer=None,
        transformer=transformer,
        vae=build_vae(False, "cuda", torch.bfloat16),
        scheduler=build_scheduler(),
        safety_checker=PassThroughSafetyChecker(),
    )
    pipe.set_progress_bar_config(disable=True)
    transformer.set_attention_backend("_native_cudnn")
    loaded = time.perf_counter()
    fs.compile_transformer(transformer, cache_dir=cache_dir)
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    with torch.no_grad():
        video, frames_in = fs.conditioning_video(frame, 1)
        inputs = fs.prepare_inputs(
            pipe,
            video,
            frames_in,
            num_frames=frames,
            height=height,
            width=width,
            prompt_embeds=random_prompt_embeds(False, "cuda", torch.bfloat16, 1),
            negative_prompt_embeds=None,
            generator=torch.Generator("cpu").manual_seed(0),
        )
        fs.denoise(pipe, inputs, steps=1, guidance=1.0)
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
    p.add_argument("--height", type=int, default=432)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--frames", type=int, default=93)
    p.add_argument("--out", default="bench_restart.json")
    p.add_argument("--child", nargs=2, metavar=("MODEL_DIR", "CACHE_DIR"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]), args.height, args.width, args.frames)
        return

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench_restart_"))
    model_dir, cache_dir = work / "transformer", work / "compile_cache"
    t0 = time.perf_counter()
    build_transformer(False, "cuda", torch.bfloat16).save_pretrained(model_dir)
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
                "--height",
                str(args.height),
                "--width",
                str(args.width),
                "--frames",
                str(args.frames),
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
