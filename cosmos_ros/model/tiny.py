"""A tiny random-weight Cosmos Predict 2.5 pipeline for tests, demos and CI.

It uses the real classes (``CosmosTransformer3DModel``, ``AutoencoderKLWan``,
``Qwen2_5_VLForConditionalGeneration``, a fast tokenizer with a Qwen-style chat template, the
UniPC flow scheduler of the released model) written by ``save_pretrained`` in the layout of
``nvidia/Cosmos-Predict2.5-2B`` (revision ``diffusers/base/post-trained``), so every code path
that loads, adapts or runs the real model can be exercised on a CPU in seconds.

The directory also carries :data:`HINT_NAME`, which tells the runtime to scale its presets down
(real model directories have no such file). Same seed => byte-identical weight files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cosmos_ros.atomic import atomic_path

#: Hint file at the root of a tiny model directory; the runtime reads it to scale presets down.
HINT_NAME = "cosmos_ros_model.json"
HINT_SCHEMA = "cosmos_ros.model_hint/1"
#: Everything :func:`make_tiny_model` writes at the top of its folder (what --overwrite may delete).
TINY_MODEL_ENTRIES: tuple[str, ...] = (
    HINT_NAME,
    "model_index.json",
    "scheduler",
    "text_encoder",
    "tokenizer",
    "transformer",
    "vae",
)

#: Preset overrides the tiny model's hint file records (fast on a CPU; see presets.py).
TINY_PRESETS: dict[str, dict[str, Any]] = {
    "full": {"height": 64, "width": 96, "num_frames": 9, "steps": 4, "guidance": 7.0, "fps": 16.0},
    "full-720p": {"height": 96, "width": 160, "num_frames": 9, "steps": 4, "guidance": 7.0, "fps": 16.0},
    "preview": {"height": 64, "width": 96, "num_frames": 5, "steps": 2, "guidance": 7.0, "fps": 16.0},
}

#: Words the tiny tokenizer is trained on: robot-manipulation vocabulary plus the chat markup.
_CORPUS = (
    "The robot arm is performing a task. The robot arm picks up the red cube and places it in the "
    "blue bowl. A gripper opens and closes. The camera looks at a table with objects. The robot "
    "moves forward and turns left, then right. A mobile robot drives down a corridor past a door. "
    "You are a helpful assistant who will provide prompts to an image generator. The video "
    "captures a series of frames showing ugly scenes, static with no motion, motion blur, "
    "over-saturation, shaky footage, low resolution, grainy texture, pixelated images, poorly lit "
    "areas, underexposed and overexposed scenes, poor color balance, washed out colors, choppy "
    "sequences, jerky movements, low frame rate, artifacting, color banding, unnatural transitions, "
    "outdated special effects, fake elements, unconvincing visuals, poorly edited content, jump "
    "cuts, visual noise, and flickering. Overall, the video is of poor quality. system user "
    "assistant 0 1 2 3 4 5 6 7 8 9 ! ? , . : ; ' \" ( ) - _ / \n"
)

#: Qwen2-style chat template that accepts ``content`` as a string or a list of text parts.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                   "<|image_pad|>", "<|video_pad|>"]  # fmt: skip

# Tiny dimensions. The text encoder's per-layer hidden states are concatenated by the pipeline:
# TEXT_LAYERS * TEXT_HIDDEN channels go into the transformer's cross-attention projection.
TEXT_HIDDEN = 32
TEXT_LAYERS = 2
VOCAB_SIZE = 384


def _build_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(_SPECIAL_TOKENS),
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=_SPECIAL_TOKENS[1:],
        model_max_length=512,
        padding_side="right",
    )
    fast.add_special_tokens({"additional_special_tokens": _SPECIAL_TOKENS[1:]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_text_components(seed: int) -> dict[str, Any]:
    """Tokenizer, tiny text encoder and the released scheduler (shared with cosmos-mini)."""
    import torch
    from diffusers import UniPCMultistepScheduler
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = _build_tokenizer()
    vocab = len(tokenizer)
    special = {t: tokenizer.convert_tokens_to_ids(t) for t in _SPECIAL_TOKENS}
    torch.manual_seed(seed + 2)
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab,
            "hidden_size": TEXT_HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": TEXT_LAYERS,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "max_position_embeddings": 1024,
            "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": special["<|endoftext|>"],
            "eos_token_id": special["<|im_end|>"],
            "pad_token_id": special["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": TEXT_HIDDEN,
            "fullatt_block_indexes": [0],
        },
        image_token_id=special["<|image_pad|>"],
        video_token_id=special["<|video_pad|>"],
        vision_start_token_id=special["<|vision_start|>"],
        vision_end_token_id=special["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(config).eval()

    # The released model's scheduler (diffusers' convert_cosmos_to_diffusers.py, Cosmos-2.5).
    scheduler = UniPCMultistepScheduler(
        use_karras_sigmas=True,
        use_flow_sigmas=True,
        prediction_type="flow_prediction",
        sigma_max=200.0,
        sigma_min=0.01,
    )
    return {"text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def _build_components(seed: int) -> dict[str, Any]:
    import torch
    from diffusers import AutoencoderKLWan, CosmosTransformer3DModel

    text = build_text_components(seed)  # first: the tokenizer is trained before any weight is drawn
    torch.manual_seed(seed)
    transformer = CosmosTransformer3DModel(
        in_channels=16 + 1,
        out_channels=16,
        num_attention_heads=2,
        attention_head_dim=32,
        num_layers=2,
        mlp_ratio=2.0,
        text_embed_dim=32,
        adaln_lora_dim=8,
        max_size=(128, 240, 240),
        patch_size=(1, 2, 2),
        rope_scale=(1.0, 3.0, 3.0),
        concat_padding_mask=True,
        extra_pos_embed_type=None,
        use_crossattn_projection=True,
        crossattn_proj_in_channels=TEXT_HIDDEN * TEXT_LAYERS,
        encoder_hidden_states_channels=32,
    )

    torch.manual_seed(seed + 1)
    vae = AutoencoderKLWan(
        base_dim=4,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    return {"transformer": transformer.eval(), "vae": vae.eval(), **text}


def save_pipeline_folder(
    final: Path, components: dict[str, Any], hint: dict[str, Any], extra: dict[str, str] | None = None
) -> Path:
    """Write ``components`` as a released-layout diffusers folder plus the hint file, atomically.

    ``extra`` maps file names to text written beside them (a model card, training records).
    """
    from diffusers import Cosmos2_5_PredictBasePipeline

    # The released checkpoint records no safety checker in model_index.json (diffusers' converter
    # passes a stand-in); the runtime supplies one at load time (see safety.py).
    pipe = Cosmos2_5_PredictBasePipeline(**components, safety_checker=_NoChecker())
    with atomic_path(final) as tmp:
        pipe.save_pretrained(tmp, safe_serialization=True)
        index_path = tmp / "model_index.json"
        index = json.loads(index_path.read_text(encoding="utf-8"))
        index["safety_checker"] = [None, None]
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / HINT_NAME).write_text(json.dumps(hint, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return final


def make_tiny_model(directory: str | os.PathLike[str], seed: int = 0, *, overwrite: bool = False) -> Path:
    """Write a tiny random-weight Cosmos Predict 2.5 pipeline to ``directory``; return its path.

    Deterministic: the same ``seed`` gives byte-identical weight files. Refuses to overwrite an
    existing non-empty directory unless ``overwrite`` is set, and even then anything but an earlier
    tiny model (see :func:`_check_replaceable`). Written atomically.
    """
    final = Path(directory)
    _check_replaceable(final, overwrite)
    hint = {"schema": HINT_SCHEMA, "kind": "tiny", "seed": seed, "presets": TINY_PRESETS}
    return save_pipeline_folder(final, _build_components(seed), hint)


def _check_replaceable(final: Path, overwrite: bool) -> None:
    """Refuse to replace anything but an empty folder or, with ``overwrite``, an earlier tiny model.

    Why: replacing the folder deletes all of it, so ``--overwrite`` must not take a user's files
    (or a real model directory, which has no tiny hint file) along with an old tiny model.
    """
    if not final.exists():
        return
    if not final.is_dir():
        raise FileExistsError(f"{final} exists and is not a folder; give a folder path for the tiny model")
    entries = sorted(path.name for path in final.iterdir())
    if not entries:
        return
    if not overwrite:
        raise FileExistsError(
            f"{final} exists and is not empty; pass overwrite=True (--overwrite) to replace an earlier "
            "tiny model, or choose another folder"
        )
    strangers = [name for name in entries if name not in TINY_MODEL_ENTRIES]
    if strangers:
        shown = ", ".join(strangers[:5]) + (f" and {len(strangers) - 5} more" if len(strangers) > 5 else "")
        raise FileExistsError(
            f"{final}: --overwrite refuses to delete a folder that holds other things: {shown} "
            f"(a tiny model holds only {', '.join(TINY_MODEL_ENTRIES)})"
        )
    if not _is_tiny_model(final):
        raise FileExistsError(
            f"{final}: --overwrite refuses to delete a model folder that is not a tiny model "
            f"(no {HINT_NAME} with kind 'tiny'); it may be a real model"
        )


def _is_tiny_model(folder: Path) -> bool:
    """The folder's hint file (read as the runtime reads it) says it is a tiny model."""
    from cosmos_ros.model.presets import read_model_hint  # presets imports this module

    try:
        hint = read_model_hint(folder)
    except (OSError, ValueError):
        return False
    return isinstance(hint, dict) and hint.get("kind") == "tiny"


class _NoChecker:
    """Placeholder passed at save time only (the pipeline's constructor insists on a checker)."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None
