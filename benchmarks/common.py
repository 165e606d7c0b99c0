"""Shared pieces of the GPU benchmarks: the real 2B architecture with random weights.

Benchmarks never load real weights: they build ``CosmosTransformer3DModel`` with the released 2B
configuration (../shared/ANCHORS.md, reproduced below) and a default-config Wan 2.1 VAE, seeded,
so that timings and memory are those of the real model while nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
try:  # an installed cosmos_ros (editable or not) maps bag_tools/ and training/ into its namespace
    import cosmos_ros  # noqa: F401
except ImportError:  # a bare checkout: the library modules still import from the source tree
    sys.path.insert(0, str(REPO))

#: Cosmos-Predict2.5-2B transformer configuration (2.06 B parameters).
COSMOS_2B_CONFIG: dict[str, Any] = {
    "in_channels": 17,
    "out_channels": 16,
    "num_attention_heads": 16,
    "attention_head_dim": 128,
    "num_layers": 28,
    "mlp_ratio": 4.0,
    "text_embed_dim": 1024,
    "adaln_lora_dim": 256,
    "max_size": (128, 240, 240),
    "patch_size": (1, 2, 2),
    "rope_scale": (1.0, 3.0, 3.0),
    "concat_padding_mask": True,
    "extra_pos_embed_type": None,
    "use_crossattn_projection": True,
    "crossattn_proj_in_channels": 100352,
    "encoder_hidden_states_channels": 1024,
}

#: A tiny configuration of the same classes, for a --quick sanity run on a CPU.
TINY_CONFIG: dict[str, Any] = {
    **COSMOS_2B_CONFIG,
    "num_attention_heads": 2,
    "attention_head_dim": 32,
    "num_layers": 2,
    "mlp_ratio": 2.0,
    "text_embed_dim": 32,
    "adaln_lora_dim": 8,
    "crossattn_proj_in_channels": 64,
    "encoder_hidden_states_channels": 32,
}

#: Cosmos-Reason1-7B, the released text encoder: the Qwen2.5-VL-7B architecture (8.3 B parameters).
#: Its 28 layers x 3584 channels are what the transformer's 100352-channel ``crossattn_proj`` takes.
REASON1_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
}
REASON1_VISION_CONFIG: dict[str, Any] = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "out_hidden_size": 3584,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "patch_size": 14,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "window_size": 112,
}

from cosmos_ros.model.adapter_folder import DEFAULT_TARGET_MODULES as RECIPE_TARGETS  # noqa: E402


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def now() -> float:
    sync()
    return time.perf_counter()


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def peak_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def compile_stock(transformer: Any, *, backend: str = "inductor", fullgraph: bool = True) -> str:
    """Regional compilation the way the diffusers docs recommend; returns how it was applied.

    The docs' one line is ``transformer.compile_repeated_blocks(fullgraph=True)``. diffusers
    0.42's ``CosmosTransformer3DModel`` names no ``_repeated_blocks``, so the call would raise;
    the equivalent is to name its block class on the instance and make the same call, which
    compiles every ``CosmosTransformerBlock`` with the same arguments. ``backend`` is
    ``torch.compile``'s (default "inductor"; "eager" only traces, for a CPU sanity run).
    """
    how = "compile_repeated_blocks"
    if not getattr(transformer, "_repeated_blocks", None):
        transformer._repeated_blocks = ["CosmosTransformerBlock"]
        how = "compile_repeated_blocks (_repeated_blocks set on the instance)"
    transformer.compile_repeated_blocks(fullgraph=fullgraph, backend=backend)
    return how


def uncompile_blocks(transformer: Any) -> None:
    """Undo ``nn.Module.compile`` on the blocks and drop dynamo's caches (next engine starts clean)."""
    import torch

    for block in transformer.transformer_blocks:
        block._compiled_call_impl = None
    torch._dynamo.reset()


def dynamo_stats_total() -> int:
    """Sum of dynamo's compile statistics so far (a delta > 0 across a switch means it traced again)."""
    import torch

    return int(sum(torch._dynamo.utils.counters["stats"].values()))


def gpu_allocated_gib() -> float:
    import torch

    return torch.cuda.memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def build_transformer(quick: bool, device: str, dtype: Any, seed: int = 0) -> Any:
    import torch
    from diffusers import CosmosTransformer3DModel

    torch.manual_seed(seed)
    with torch.device(device):
        model = CosmosTransformer3DModel(**(TINY_CONFIG if quick else COSMOS_2B_CONFIG))
    return model.to(dtype).eval().requires_grad_(False)


def build_vae(quick: bool, device: str, dtype: Any, seed: int = 1) -> Any:
    import torch
    from diffusers import AutoencoderKLWan

    torch.manual_seed(seed)
    kwargs = {"base_dim": 8, "dim_mult": [1, 1, 1, 1], "num_res_blocks": 1} if quick else {}
    with torch.device(device):
        vae = AutoencoderKLWan(**kwargs)
    return vae.to(dtype).eval().requires_grad_(False)


def build_scheduler() -> Any:
    from diffusers import UniPCMultistepScheduler

    # The released model's scheduler settings.
    return UniPCMultistepScheduler(
        use_karras_sigmas=True,
        use_flow_sigmas=True,
        prediction_type="flow_prediction",
        sigma_max=200.0,
        sigma_min=0.01,
    )


def build_pipeline(quick: bool, device: str, dtype: Any) -> Any:
    from diffusers import Cosmos2_5_PredictBasePipeline

    from cosmos_ros.model.safety import PassThroughSafetyChecker

    pipe = Cosmos2_5_PredictBasePipeline(
        text_encoder=None,
        tokenizer=None,
        transformer=build_transformer(quick, device, dtype),
        vae=build_vae(quick, device, dtype),
        scheduler=build_scheduler(),
        safety_checker=PassThroughSafetyChecker(),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def build_reason1_text_encoder(tiny_config: Any, device: str, dtype: Any, seed: int = 2) -> Any:
    """A random text encoder of Cosmos-Reason1-7B's size that speaks the tiny tokenizer's ids.

    ``tiny_config`` is the tiny model's ``Qwen2_5_VLConfig`` (its special-token ids match the tiny
    tokenizer); the layer sizes become the released ones, so loading and encoding cost what
    Cosmos-Reason1 costs, while any prompt the tiny tokenizer writes stays inside the vocabulary.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    derived = ("layer_types", "head_dim", "sliding_window", "max_window_layers")  # recomputed from sizes
    top = {k: v for k, v in tiny_config.to_dict().items() if k not in ("text_config", "vision_config")}
    text = {k: v for k, v in tiny_config.text_config.to_dict().items() if k not in derived}
    vision = tiny_config.vision_config.to_dict()
    config = tiny_config.__class__(
        **{**top, "tie_word_embeddings": False},
        text_config={**text, **REASON1_TEXT_CONFIG, "tie_word_embeddings": False},
        vision_config={**vision, **REASON1_VISION_CONFIG},
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype)
    return model.eval().requires_grad_(False)


def build_model_dir(folder: Path, *, text_encoder: str = "tiny", quick: bool = False) -> Path:
    """A model folder in the released layout with the real 2B transformer and Wan VAE (random weights).

    ``text_encoder="tiny"`` keeps the tiny model's small text encoder (enough where prompts come
    from a cache, e.g. a node's start-up); ``"reason1"`` writes one of Cosmos-Reason1-7B's size,
    for benchmarks that pay for text encoding. ``quick`` keeps every tiny component (CPU checks).
    """
    import shutil

    import torch

    from cosmos_ros.model.tiny import HINT_NAME, make_tiny_model

    make_tiny_model(folder)
    if quick:
        return folder
    (folder / HINT_NAME).unlink()  # real presets (432x768x93), as a real checkpoint has
    for name in ("transformer", "vae"):
        shutil.rmtree(folder / name)
    build_transformer(False, "cuda", torch.bfloat16).save_pretrained(folder / "transformer")
    build_vae(False, "cuda", torch.bfloat16).save_pretrained(folder / "vae")
    if text_encoder == "reason1":
        from transformers import Qwen2_5_VLConfig

        tiny = Qwen2_5_VLConfig.from_pretrained(folder / "text_encoder")
        shutil.rmtree(folder / "text_encoder")
        model = build_reason1_text_encoder(tiny, "cuda", torch.bfloat16)
        model.save_pretrained(folder / "text_encoder")
        del model
        torch.cuda.empty_cache()
    return folder


def random_prompt_embeds(quick: bool, device: str, dtype: Any, seed: int) -> Any:
    """Stand-ins for cached text-encoder outputs: [1, 512, 100352] like Cosmos-Reason1's."""
    import torch

    channels = (TINY_CONFIG if quick else COSMOS_2B_CONFIG)["crossattn_proj_in_channels"]
    gen = torch.Generator("cpu").manual_seed(seed)
    return torch.randn(1, 512, channels, generator=gen).to(device=device, dtype=dtype)


def save_random_lora(
    transformer: Any, folder: Path, *, rank: int, seed: int, use_dora: bool = False, dtype: Any = None
) -> Path:
    """Write a random LoRA/DoRA for ``transformer`` in the stock diffusers format."""
    import torch
    from diffusers import Cosmos2_5_PredictBasePipeline

    gen = torch.Generator("cpu").manual_seed(seed)
    layers: dict[str, Any] = {}
    for name, module in transformer.named_modules():
        if not isinstance(module, torch.nn.Linear) or not name.startswith("transformer_blocks."):
            continue
        if not any(name == t or name.endswith("." + t) for t in RECIPE_TARGETS):
            continue
        out_f, in_f = module.weight.shape
        layers[f"{name}.lora_A.weight"] = torch.randn(rank, in_f, generator=gen) / in_f**0.5
        layers[f"{name}.lora_B.weight"] = torch.randn(out_f, rank, generator=gen) * 0.02
        if use_dora:
            norm = module.weight.detach().float().norm(dim=1).cpu()
            layers[f"{name}.lora_magnitude_vector"] = norm * (1 + 0.01 * torch.randn(out_f, generator=gen))
    if dtype is not None:
        layers = {k: v.to(dtype) for k, v in layers.items()}
    metadata = {"r": rank, "lora_alpha": rank, "target_modules": list(RECIPE_TARGETS), "use_dora": use_dora}
    Cosmos2_5_PredictBasePipeline.save_lora_weights(
        folder, transformer_lora_layers=layers, transformer_lora_adapter_metadata=metadata
    )
    return folder


def psnr(a: Any, b: Any) -> float:
    import numpy as np

    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def write_results(path: str | os.PathLike[str], results: dict[str, Any]) -> None:
    from cosmos_ros.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(results, indent=2, default=str))


def environment() -> dict[str, Any]:
    import diffusers
    import torch

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cuda": torch.version.cuda,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info
