"""One rank of the context-parallel checks, run by tests/test_context_parallel.py under torchrun (gloo).

Writes what it measured to ``OUT/rank<N>.json``; the test asserts on it, so a failure names the
number at fault instead of a hung collective. Usage: ``torchrun ... context_parallel_worker.py MODEL OUT``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
import torch.distributed as dist
from diffusers import CosmosTransformer3DModel
from diffusers.models._modeling_parallel import ContextParallelConfig

from cosmos_ros.model.context_parallel import (
    compare_with_plain,
    disable_context_parallel,
    enable_context_parallel,
    sample_inputs,
)


def _tokens_seen(transformer: Any) -> tuple[list[int], list[Any]]:
    """Token counts each self-attention receives (filled during forwards), and the hook handles."""
    seen: list[int] = []
    handles = [
        block.attn1.register_forward_pre_hook(
            lambda _m, args, kw: seen.append(int(args[0].shape[1])), with_kwargs=True
        )
        for block in transformer.transformer_blocks
    ]
    return seen, handles


def _forward(transformer: Any, inputs: dict[str, Any]) -> torch.Tensor:
    with torch.no_grad():
        return transformer(**inputs, return_dict=False)[0]


def _pipeline_check(model: str) -> dict[str, Any]:
    """Latents of a 2-step image-to-world prediction, plain then context-parallel."""
    from diffusers import Cosmos2_5_PredictBasePipeline

    from cosmos_ros.model.safety import PassThroughSafetyChecker

    pipe = Cosmos2_5_PredictBasePipeline.from_pretrained(model, safety_checker=PassThroughSafetyChecker())
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(5)
    image = PIL.Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))

    def run() -> torch.Tensor:
        return pipe(
            image=image,
            prompt="The robot arm picks up the red cube.",
            height=64,
            width=96,
            num_frames=9,
            num_inference_steps=2,
            guidance_scale=3.0,
            generator=torch.Generator().manual_seed(0),
            output_type="latent",
        ).frames

    plain = run()
    enable_context_parallel(pipe.transformer, ContextParallelConfig(ulysses_degree=2))
    seen, _ = _tokens_seen(pipe.transformer)
    parallel = run()
    return {
        "tokens_seen": sorted(set(seen)),
        "shape": list(parallel.shape),
        "max_abs_diff": float((parallel - plain).abs().max()),
        "max_abs_output": float(plain.abs().max()),
    }


def _runtime_check(model: str, out: Path) -> dict[str, Any]:
    """cosmos_ros's own runtime (fast engine) with ``context_parallel``: the plain prediction's frames."""
    from cosmos_ros.model.runtime import CosmosRuntime

    frame = np.random.default_rng(7).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    prompt = "The robot arm picks up the red cube."
    cache = out / f"prompts_rank{dist.get_rank()}"
    kwargs = {"device": "cpu", "dtype": "float32", "safety_checker": "off", "prompt_cache_dir": cache}
    plain = CosmosRuntime.load(model, **kwargs).predict(frame, prompt, steps=2, seed=0)
    config = ContextParallelConfig(ulysses_degree=2)
    runtime = CosmosRuntime.load(model, **kwargs, context_parallel=config)
    seen, _ = _tokens_seen(runtime.pipe.transformer)
    parallel = runtime.predict(frame, prompt, steps=2, seed=0)
    diff = np.abs(parallel.frames.astype(np.int16) - plain.frames.astype(np.int16))
    return {
        "shape": list(parallel.frames.shape),
        "max_abs_diff": int(diff.max()),
        "frame_std": float(plain.frames.std()),
        "tokens_seen": sorted(set(seen)),
    }


def main(model: str, out: Path) -> None:
    dist.init_process_group("gloo")
    result: dict[str, Any] = {"rank": dist.get_rank()}
    path = Path(model) / "transformer"
    transformer = CosmosTransformer3DModel.from_pretrained(path).eval()
    inputs = sample_inputs(transformer, 3, 8, 12, seed=1, per_frame_timestep=True)
    plain = _forward(transformer, inputs)

    # 1. Ulysses gives the plain output, and each rank's self-attention really gets half the tokens
    seen, handles = _tokens_seen(transformer)
    result["ulysses"] = compare_with_plain(transformer, ContextParallelConfig(ulysses_degree=2), 3, 8, 12)
    seen.clear()  # compare_with_plain ran the plain model too; now only the context-parallel one
    result["ulysses_seed1_diff"] = float((_forward(transformer, inputs) - plain).abs().max())
    result["ulysses_tokens_seen"] = sorted(set(seen))
    # 2. negative control: the same slices with the attention's communication switched off
    for block in transformer.transformer_blocks:
        block.attn1.processor._parallel_config = None
    result["no_attention_exchange_diff"] = float((_forward(transformer, inputs) - plain).abs().max())
    # 3. a token count the ranks cannot share evenly: refused in one line naming the shape
    try:
        _forward(transformer, sample_inputs(transformer, 3, 6, 10, per_frame_timestep=True))
        result["uneven_error"] = None
    except ValueError as exc:
        result["uneven_error"] = str(exc)
    # 4. disabled: the stock model again, on all tokens
    disable_context_parallel(transformer)
    seen.clear()
    result["disabled_diff"] = float((_forward(transformer, inputs) - plain).abs().max())
    result["disabled_tokens_seen"] = sorted(set(seen))
    for handle in handles:
        handle.remove()

    # 5. ring attention: gloo has the collectives; the CPU attention backend may not return log-sum-exp
    try:
        result["ring"] = compare_with_plain(transformer, ContextParallelConfig(ring_degree=2), 3, 8, 12)
    except ValueError as exc:
        result["ring_error"] = str(exc)

    # 6. the learnable positional embedding (extra_pos_embed_type="learnable"), with non-zero weights
    torch.manual_seed(3)
    learnable = CosmosTransformer3DModel.from_config(
        {**transformer.config, "extra_pos_embed_type": "learnable"}
    )
    with torch.no_grad():
        for name, param in learnable.named_parameters():
            if name.startswith("learnable_pos_embed."):
                param.normal_()
    result["learnable"] = compare_with_plain(
        learnable.eval(), ContextParallelConfig(ulysses_degree=2), 3, 8, 12
    )

    # 7. a whole stock pipeline call (the README's recipe): same arguments and seed on every rank
    result["pipeline"] = _pipeline_check(model)
    # 8. the runtime's opt-in (CosmosRuntime.load(..., context_parallel=...)), fast engine
    result["runtime"] = _runtime_check(model, out)

    (out / f"rank{dist.get_rank()}.json").write_text(json.dumps(result, indent=2, sort_keys=True))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
