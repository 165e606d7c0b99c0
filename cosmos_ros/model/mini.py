"""cosmos-mini: a small *trained* Cosmos Predict 2.5 world model of the procedural robot world.

The same diffusers classes and folder layout as nvidia/Cosmos-Predict2.5-2B (a Wan 2.1 VAE with
8x spatial and 4x temporal compression, ``CosmosTransformer3DModel`` with the released patch
size and rope scaling, the released UniPC flow scheduler), small enough to train and run on a
laptop CPU, and trained by this project (``cosmos-ros make-mini-model``; training/mini/) on the
pretraining embodiments of :mod:`cosmos_ros.bag_tools.world`. It is a toy world that proves the
adapt -> evaluate -> deploy loop works, not Cosmos quality: an adapter's effect on it is
measurable, where on random weights it is noise.

The trained VAE ships with the package (SHIPPED_DIR/vae); the whole model will, once its
transformer is trained (:func:`mini_model_dir` says which). This module holds the architecture,
the presets its hint file records, and the assembly of a model folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cosmos_ros.model.tiny import HINT_SCHEMA

#: The shipped model folder (package data; training/mini/ makes it): today only its vae/ is there.
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "assets" / "cosmos-mini"
MODEL_CARD_NAME = "README.md"
TRAINING_RECORD_NAME = "training_record.json"

#: 64x96 frames, 17 frames (5 latent frames) at 16 fps: a one-second prediction on a CPU.
MINI_PRESETS: dict[str, dict[str, Any]] = {
    "full": {"height": 64, "width": 96, "num_frames": 17, "steps": 12, "guidance": 1.0, "fps": 16.0},
    "full-720p": {"height": 96, "width": 144, "num_frames": 17, "steps": 12, "guidance": 1.0, "fps": 16.0},
    "preview": {"height": 64, "width": 96, "num_frames": 9, "steps": 6, "guidance": 1.0, "fps": 16.0},
}

#: Wan 2.1 VAE at small width: same 8x/4x compression and 16 latent channels as the released VAE.
VAE_CONFIG: dict[str, Any] = {
    "base_dim": 24,
    "z_dim": 16,
    "dim_mult": [1, 2, 2, 2],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}

#: The 2B configuration's shape rules (patch 1x2x2, rope scale, padding mask, text projection)
#: at 6 layers of width 192.
TRANSFORMER_CONFIG: dict[str, Any] = {
    "in_channels": 17,
    "out_channels": 16,
    "num_attention_heads": 6,
    "attention_head_dim": 32,
    "num_layers": 6,
    "mlp_ratio": 4.0,
    "text_embed_dim": 192,
    "adaln_lora_dim": 64,
    "max_size": (128, 240, 240),
    "patch_size": (1, 2, 2),
    "rope_scale": (1.0, 3.0, 3.0),
    "concat_padding_mask": True,
    "extra_pos_embed_type": None,
    "use_crossattn_projection": True,
    "encoder_hidden_states_channels": 192,
}


def mini_model_dir() -> Path:
    """The shipped cosmos-mini folder; a clear error when this install lacks it."""
    if not (SHIPPED_DIR / "model_index.json").is_file():
        if (SHIPPED_DIR / "vae" / "config.json").is_file():
            raise FileNotFoundError(
                f"cosmos-mini is not complete in this install: only its trained VAE ships "
                f"({SHIPPED_DIR / 'vae'}); train the transformer with "
                "'cosmos-ros make-mini-model --work W --vae shipped "
                "--stages prompts,transformer,assemble -o DIR'"
            )
        raise FileNotFoundError(
            f"cosmos-mini is not in this install ({SHIPPED_DIR}); build it with "
            "'cosmos-ros make-mini-model' or reinstall cosmos_ros with its package data"
        )
    return SHIPPED_DIR


def build_untrained(seed: int = 0) -> dict[str, Any]:
    """The pipeline components with untrained VAE/transformer (the starting point of training)."""
    import torch
    from diffusers import AutoencoderKLWan, CosmosTransformer3DModel

    from cosmos_ros.model.tiny import TEXT_HIDDEN, TEXT_LAYERS, build_text_components

    text = build_text_components(seed)
    torch.manual_seed(seed)
    transformer = CosmosTransformer3DModel(
        **TRANSFORMER_CONFIG, crossattn_proj_in_channels=TEXT_HIDDEN * TEXT_LAYERS
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLWan(**VAE_CONFIG)
    return {"transformer": transformer.eval(), "vae": vae.eval(), **text}


def mini_hint(seed: int) -> dict[str, Any]:
    """The hint file of a cosmos-mini folder: kind, seed and the CPU-sized presets."""
    return {"schema": HINT_SCHEMA, "kind": "mini", "seed": seed, "presets": MINI_PRESETS}


def is_mini_model(folder: str | Path) -> bool:
    """Whether ``folder``'s hint file says it is a cosmos-mini model."""
    from cosmos_ros.model.presets import read_model_hint

    try:
        hint = read_model_hint(folder)
    except (OSError, ValueError):
        return False
    return isinstance(hint, dict) and hint.get("kind") == "mini"
