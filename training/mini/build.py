"""Build cosmos-mini in four stages, each resumable, all results in one work folder.

1. ``prompts``: the tiny text encoder (seeded) embeds every prompt the world can have, plus the
   empty prompt, exactly as the pipeline does (``_get_prompt_embeds``, 512 tokens).
2. ``vae``: render episodes of the pretraining embodiments, train the Wan VAE (vae_training.py).
3. ``transformer``: encode clips with that VAE and pretrain the transformer (world_training.py).
4. ``assemble``: write the released-layout diffusers folder with a hint file, a model card and
   the training record (settings, seeds, data, curves).

Stages 2 and 3 want a GPU (minutes) but run on a CPU (hours); stage 1 and 4 need transformers
and take seconds. The work folder's ``prompts.safetensors`` is all stage 2-3 need from stage 1.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cosmos_ros.progress import ProgressCallback

from .vae_training import VaeTrainSettings
from .world_data import HELD_OUT_SEED_BASE, WorldSpec, clip_starts, render_episodes
from .world_training import WorldTrainSettings

log = logging.getLogger(__name__)

PROMPTS_FILE = "prompts.safetensors"
#: The record a trained VAE folder carries when it ships on its own (see ``MiniBuild.trained_vae``).
VAE_FOLDER_RECORD = "training_record.json"
MAX_SEQUENCE_LENGTH = 512  # what the runtime encodes prompts with


@dataclass
class MiniBuild:
    """Everything a build depends on; recorded in the model's training_record.json."""

    work_dir: str
    seed: int = 0
    episodes_per_embodiment: int = 400
    held_out_episodes: int = 8
    clip_stride: int = 2
    #: A trained VAE folder to continue from instead of a fresh (inflated) VAE; its record (inside
    #: it, or a sibling vae_record.json), when present, is kept in the new record (``continued_from``).
    vae_init: str | None = None
    #: A trained VAE folder the transformer and assemble stages use instead of WORK/vae, with its
    #: record beside the weights (``training_record.json``), e.g. the shipped
    #: cosmos_ros/assets/cosmos-mini/vae: a transformer build then needs no VAE stage.
    trained_vae: str | None = None
    spec: WorldSpec = field(default_factory=WorldSpec)
    vae: VaeTrainSettings = field(default_factory=VaeTrainSettings)
    world: WorldTrainSettings = field(default_factory=WorldTrainSettings)

    @property
    def work(self) -> Path:
        return Path(self.work_dir)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("work_dir")
        return data


def apply_overrides(build: MiniBuild, overrides: dict[str, Any]) -> MiniBuild:
    """Set build fields from ``{"field": value, "vae": {"clip_batch": 48}, ...}`` (recorded as set).

    Why: a GPU build tunes batch sizes and learning rates that have no flag of their own; an
    unknown name is refused with the accepted ones, so a typo never trains with the default.
    """
    from dataclasses import fields, is_dataclass, replace

    def merged(target: Any, values: Any, where: str) -> Any:
        if not isinstance(values, dict):
            name = where.rstrip(".") or "settings"
            raise ValueError(f"override {name}: expected a JSON object, got {values!r}")
        known = {f.name: f for f in fields(target) if f.name != "work_dir"}
        changes = {}
        for key, value in values.items():
            if key not in known:
                accepted = ", ".join(sorted(known))
                raise ValueError(f"override {where}{key}: unknown setting; accepted: {accepted}")
            current = getattr(target, key)
            if is_dataclass(current):
                value = merged(current, value, f"{where}{key}.")
            changes[key] = value
        return replace(target, **changes)

    return merged(build, overrides, "")


def pretrain_embodiments() -> list[str]:
    from cosmos_ros.bag_tools.world import PRETRAIN_EMBODIMENTS

    return sorted(PRETRAIN_EMBODIMENTS)


def stage_prompts(build: MiniBuild) -> Path:
    """Embed every world prompt and the empty prompt; the rows follow ``prompts.json``."""
    from cosmos_ros.bag_tools.world import all_prompts
    from diffusers import Cosmos2_5_PredictBasePipeline
    from safetensors.torch import save_file

    from cosmos_ros.atomic import atomic_path
    from cosmos_ros.model.tiny import build_text_components

    text = build_text_components(build.seed)
    holder = type("Holder", (), {})()
    holder.tokenizer, holder.text_encoder = text["tokenizer"], text["text_encoder"]
    prompts = [*all_prompts(), ""]
    with torch.no_grad():
        rows = [Cosmos2_5_PredictBasePipeline._get_prompt_embeds(
            holder, prompt=[p], max_sequence_length=MAX_SEQUENCE_LENGTH, device=torch.device("cpu"),
            dtype=torch.float32)[0] for p in prompts]  # fmt: skip
    build.work.mkdir(parents=True, exist_ok=True)
    with atomic_path(build.work / PROMPTS_FILE) as tmp:
        save_file(
            {"text": torch.stack(rows).contiguous()}, str(tmp), metadata={"prompts": json.dumps(prompts)}
        )
    return build.work / PROMPTS_FILE


def load_prompts(build: MiniBuild) -> tuple[torch.Tensor, list[str]]:
    from safetensors import safe_open

    path = build.work / PROMPTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the 'prompts' stage first")
    with safe_open(str(path), "pt") as fh:
        return fh.get_tensor("text"), json.loads(fh.metadata()["prompts"])


def _episodes(build: MiniBuild, held_out: bool) -> tuple[np.ndarray, list[str]]:
    count = build.held_out_episodes if held_out else build.episodes_per_embodiment
    first = HELD_OUT_SEED_BASE if held_out else 0
    return render_episodes(pretrain_embodiments(), range(first, first + count), build.spec)


def _held_out_clips(videos: np.ndarray, spec: WorldSpec) -> np.ndarray:
    return np.stack(
        [v[s : s + spec.clip_frames] for v in videos for s in (0, spec.episode_frames - spec.clip_frames)]
    )


def stage_vae(
    build: MiniBuild, device: torch.device, progress: ProgressCallback | None = None
) -> dict[str, Any]:
    from diffusers import AutoencoderKLWan

    from cosmos_ros.model.mini import VAE_CONFIG

    from .vae_training import held_out_psnr, inflate_from_frames, train_vae

    if build.vae_init:  # before rendering: a wrong folder fails in a second, not minutes later
        vae = _load_vae_init(Path(build.vae_init), VAE_CONFIG)
    else:
        torch.manual_seed(build.seed + 1)
        vae = inflate_from_frames(AutoencoderKLWan(**VAE_CONFIG))
    started = time.monotonic()
    train, _ = _episodes(build, held_out=False)
    held, _ = _episodes(build, held_out=True)
    log.info("VAE: %d training episodes rendered in %.1f s", len(train), time.monotonic() - started)
    record = train_vae(vae, train, _held_out_clips(held, build.spec), build.spec.clip_frames, build.vae,
                       device, build.work, progress)  # fmt: skip
    record["held_out_target_clip_psnr"] = held_out_psnr(vae, _target_clips(build), device)
    record["build"] = build.to_dict()  # the settings this stage ran with (a stage may run elsewhere)
    if build.vae_init:  # a work folder's VAE has its record beside it, a shipped one inside it
        init = Path(build.vae_init)
        for previous in (init / VAE_FOLDER_RECORD, init.parent / "vae_record.json"):
            if previous.is_file():
                record["continued_from"] = json.loads(previous.read_text())
                break
    vae.to("cpu").save_pretrained(build.work / "vae", safe_serialization=True)
    _write_json(build.work / "vae_record.json", record)
    return record


def _load_vae_init(folder: Path, config: dict[str, Any]) -> Any:
    """The VAE to continue from; refused unless its architecture is cosmos-mini's."""
    from diffusers import AutoencoderKLWan

    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"vae_init {folder}: no config.json (expected a saved AutoencoderKLWan)")
    vae = AutoencoderKLWan.from_pretrained(folder)
    wrong = {k: vae.config[k] for k, v in config.items() if json.dumps(vae.config[k]) != json.dumps(v)}
    if wrong:
        raise ValueError(f"vae_init {folder}: architecture differs from cosmos-mini's VAE_CONFIG in {wrong}")
    return vae


def vae_folder(build: MiniBuild) -> Path:
    """The trained VAE the later stages use: ``trained_vae`` when set, else the VAE stage's WORK/vae."""
    folder = Path(build.trained_vae) if build.trained_vae else build.work / "vae"
    if not (folder / "config.json").is_file():
        hint = "" if build.trained_vae else ": run the 'vae' stage first, or give a trained VAE (--vae)"
        raise FileNotFoundError(f"{folder}: no trained VAE (config.json missing){hint}")
    return folder


def vae_record(build: MiniBuild) -> dict[str, Any]:
    """The training record of :func:`vae_folder`'s VAE (a missing one is an error: provenance ships)."""
    path = (
        Path(build.trained_vae) / VAE_FOLDER_RECORD if build.trained_vae else build.work / "vae_record.json"
    )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the VAE's training record is missing")
    return json.loads(path.read_text())


def _target_clips(build: MiniBuild) -> np.ndarray:
    """Held-out clips of the target embodiments (never trained on): how well the VAE generalises."""
    from cosmos_ros.bag_tools.world import TARGET_EMBODIMENTS

    seeds = range(HELD_OUT_SEED_BASE, HELD_OUT_SEED_BASE + build.held_out_episodes)
    videos, _ = render_episodes(sorted(TARGET_EMBODIMENTS), seeds, build.spec)
    return _held_out_clips(videos, build.spec)


def stage_transformer(
    build: MiniBuild, device: torch.device, progress: ProgressCallback | None = None
) -> dict[str, Any]:
    from diffusers import AutoencoderKLWan, CosmosTransformer3DModel

    from cosmos_ros.model.mini import TRANSFORMER_CONFIG
    from cosmos_ros.model.tiny import TEXT_HIDDEN, TEXT_LAYERS

    from .world_training import encode_clips, train_world_model

    text_table, prompts = load_prompts(build)
    row_of = {p: i for i, p in enumerate(prompts)}
    vae = AutoencoderKLWan.from_pretrained(vae_folder(build)).to(device).eval()
    spec = build.spec
    train, train_prompts = _episodes(build, held_out=False)
    starts = clip_starts(spec, build.clip_stride)
    index = torch.tensor([row_of[p] for p in train_prompts for _ in starts])
    latents = torch.cat(
        [  # a few episodes at a time: all clips at once would take gigabytes
            encode_clips(
                vae,
                np.stack([v[s : s + spec.clip_frames] for v in train[i : i + 32] for s in starts]),
                device,
            )
            for i in range(0, len(train), 32)
        ]
    )
    del train
    held, held_prompts = _episodes(build, held_out=True)
    val_latents = encode_clips(vae, _held_out_clips(held, spec), device)
    val_index = torch.tensor([row_of[p] for p in held_prompts for _ in range(2)])
    log.info("transformer: %d training clips, %d held-out clips", len(latents), len(val_latents))
    torch.manual_seed(build.seed)
    model = CosmosTransformer3DModel(
        **TRANSFORMER_CONFIG, crossattn_proj_in_channels=TEXT_HIDDEN * TEXT_LAYERS
    )
    ema, record = train_world_model(model, latents, index, text_table, row_of[""], (val_latents, val_index),
                                    build.world, device, build.work, progress)  # fmt: skip
    record["training_clips"] = len(latents)
    record["build"] = build.to_dict()
    ema.to("cpu").save_pretrained(build.work / "transformer", safe_serialization=True, max_shard_size="10MB")
    _write_json(build.work / "world_record.json", record)
    return record


def stage_assemble(build: MiniBuild, out: Path) -> Path:
    from diffusers import AutoencoderKLWan, CosmosTransformer3DModel

    from cosmos_ros.model.mini import MODEL_CARD_NAME, TRAINING_RECORD_NAME, mini_hint
    from cosmos_ros.model.tiny import build_text_components, save_pipeline_folder

    from .model_card import model_card

    components = build_text_components(build.seed)
    components["vae"] = AutoencoderKLWan.from_pretrained(vae_folder(build)).eval()
    components["transformer"] = CosmosTransformer3DModel.from_pretrained(build.work / "transformer").eval()
    record = {
        "build": build.to_dict(),
        "pretrain_embodiments": pretrain_embodiments(),
        "vae": vae_record(build),
        "transformer": json.loads((build.work / "world_record.json").read_text()),
    }
    extra = {TRAINING_RECORD_NAME: json.dumps(record, indent=2, sort_keys=True) + "\n",
             MODEL_CARD_NAME: model_card(record)}  # fmt: skip
    return save_pipeline_folder(out, components, mini_hint(build.seed), extra)


def _write_json(path: Path, data: Any) -> None:
    from cosmos_ros.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
