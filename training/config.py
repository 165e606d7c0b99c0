"""The training configuration: one dataclass, loaded from YAML, overridden by ``--set key=value``.

Every field carries its default and its meaning here, so ``cosmos-ros train --help-config`` and
the YAML files stay in sync with the code. The published recipe's values are in
``configs/lora_recipe.yaml``; the defaults below equal them where the recipe fixes a value.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cosmos_ros.model.adapter_folder import ADAPTER_TYPES, DEFAULT_TARGET_MODULES
from cosmos_ros.typed_fields import FieldTypeError, coerce

from .trackers import REPORT_TO_WORDS, parse_report_to

#: Named configs shipped with the package (``--config lora_recipe`` works without a path).
CONFIG_DIR = Path(__file__).with_name("configs")

LR_SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine")
CHECKPOINTING_MODES = ("full", "save_attention", "none")
MIXED_PRECISIONS = ("bf16", "no")


@dataclass
class TrainConfig:
    """Everything one training run depends on. Field docs live in :data:`FIELD_HELP`."""

    # --- inputs and outputs
    base_model: str = ""
    dataset: str = ""
    output_dir: str = "runs/adapter"
    cache_dir: str | None = None
    registry: str | None = None
    adapter_name: str | None = None
    # --- adapter
    adapter_type: str = "lora"
    rank: int = 32
    alpha: float = 32.0
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    # --- optimisation
    learning_rate: float = 2**-14.5
    weight_decay: float = 1e-3
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    lr_schedule: str = "constant_with_warmup"
    warmup_steps: int = 1000
    max_grad_norm: float = 1.0
    max_steps: int | None = None
    epochs: int | None = 100
    batch_size: int = 1
    gradient_accumulation: int = 1
    seed: int = 0
    # --- data and preprocessing
    height: int = 432
    width: int = 768
    num_frames: int = 93
    fps: float = 16.0
    frame_fit: str = "crop"
    prompt_prefix: str = ""
    max_sequence_length: int = 512
    validation_clips: int = 2
    # --- objective
    cond_frame_probs: list[float] = field(default_factory=lambda: [0.5, 0.5])
    cond_timestep: float = 1e-4
    prompt_dropout: float = 0.2
    logit_normal_mean: float = 0.0
    logit_normal_std: float = 1.0
    sigma_shift: float = 5.0
    # --- speed and memory
    device: str = "auto"
    mixed_precision: str = "bf16"
    tf32: bool = True
    gradient_checkpointing: str = "full"
    checkpoint_skip_blocks: int = 0
    compile_blocks: bool = False
    fused_optimizer: bool = True
    lean_adapter_forward: bool = True
    attention_backend: str | None = None
    # --- checkpoints, validation, logging
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    resume: str = "auto"
    validation_every: int = 500
    validation_steps: int = 8
    log_every: int = 10
    report_to: str = "tensorboard"

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # YAML 1.1 reads a bare `no` (file or --set) as false
            self.mixed_precision = "no"
        self._check_types()
        self.validate()

    def _check_types(self) -> None:
        """Refuse values of the wrong type by field name (before a bare ``int()`` error could name none)."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, str(f.type), getattr(self, f.name)))

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the field at fault and what would be accepted."""

        def bad(name: str, accepted: str, *others: str) -> ConfigError:
            return ConfigError(
                f"config field {name}={getattr(self, name)!r} is invalid; accepted: {accepted}", name, *others
            )

        if self.adapter_type not in ADAPTER_TYPES:
            raise bad("adapter_type", " | ".join(ADAPTER_TYPES))
        if self.rank < 1:
            raise bad("rank", "a positive integer")
        if not self.target_modules:
            raise bad("target_modules", "a non-empty list of module name suffixes")
        probs = self.cond_frame_probs
        if len(probs) != 2 or min(probs) < 0 or not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
            raise bad("cond_frame_probs", "two probabilities [p(1 frame), p(2 frames)] summing to 1")
        # Every clip needs its conditioning latent frames (1 or 2) plus at least one generated one;
        # num_frames = 4 * (latent frames - 1) + 1 for the Wan VAE.
        min_frames = 9 if probs[1] > 0 else 5
        if self.num_frames < min_frames or (self.num_frames - 1) % 4 != 0:
            why = (
                f"at least 9 while cond_frame_probs={probs} can draw 2 conditioning latent frames; "
                "5 is accepted with cond_frame_probs=[1, 0]"
                if probs[1] > 0
                else "at least 5: 1 conditioning latent frame plus 1 to generate"
            )
            raise bad(
                "num_frames",
                f"{min_frames}, {min_frames + 4}, ..., 93 (4k+1, as the Wan VAE needs; {why})",
                "cond_frame_probs",
            )
        for name in ("height", "width"):
            if getattr(self, name) <= 0 or getattr(self, name) % 16 != 0:
                raise bad(name, "a positive multiple of 16")
        if not 0.0 <= self.prompt_dropout <= 1.0:
            raise bad("prompt_dropout", "a probability in [0, 1]")
        if self.lr_schedule not in LR_SCHEDULES:
            raise bad("lr_schedule", " | ".join(LR_SCHEDULES))
        if self.gradient_checkpointing not in CHECKPOINTING_MODES:
            raise bad("gradient_checkpointing", " | ".join(CHECKPOINTING_MODES))
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise bad("mixed_precision", " | ".join(MIXED_PRECISIONS))
        if self.frame_fit not in ("crop", "letterbox"):
            raise bad("frame_fit", "crop | letterbox")
        if self.max_steps is None and self.epochs is None:
            raise bad("max_steps", "a number of steps, or set epochs", "epochs")
        if self.max_steps is not None and self.max_steps < 1:
            raise bad("max_steps", "a positive integer or null (then epochs decides)")
        if self.epochs is not None and self.epochs < 1:
            raise bad("epochs", "a positive integer or null")
        for name in (
            "batch_size",
            "gradient_accumulation",
            "checkpoint_every",
            "keep_checkpoints",
            "log_every",
        ):
            if getattr(self, name) < 1:
                raise bad(name, "a positive integer")
        for name, accepted, lowest in (
            ("validation_every", "an integer >= 0 (0: only at the end)", 0),
            ("validation_clips", "an integer >= 0", 0),
            ("validation_steps", "an integer >= 1", 1),
        ):
            if getattr(self, name) < lowest:
                raise bad(name, accepted)
        try:
            parse_report_to(self.report_to)
        except ValueError:
            raise bad(
                "report_to", f"{' | '.join(REPORT_TO_WORDS)} or a comma list such as tensorboard,mlflow"
            ) from None
        if self.resume not in ("auto", "none") and not Path(self.resume).exists():
            raise bad("resume", "auto | none | the path of an existing checkpoint folder")

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "<dict>", origins: dict[str, str] | None = None
    ) -> TrainConfig:
        """Build and validate a config; errors start with where the faulty value came from.

        ``origins`` maps a field to where its value was set (a YAML path, ``--set key=value``);
        fields missing from it are blamed on ``source``.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{source}: unknown config field(s) {unknown}; known fields: {sorted(known)}")
        try:
            return cls(**data)
        except ConfigError as exc:
            origins = origins or {}
            where = origins.get(exc.fields[0], source)
            also = [f"{n} from {origins[n]}" for n in exc.fields[1:] if origins.get(n, where) != where]
            raise ValueError(f"{where}: {exc}" + (f" ({'; '.join(also)})" if also else "")) from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {exc}") from exc


class ConfigError(ValueError):
    """A config value that is refused; ``fields`` names the field at fault first, then related ones."""

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields


def _coerce(name: str, type_name: str, value: Any) -> Any:
    """``value`` as the field's declared type (ints widen to floats), else a ``ConfigError`` naming it."""
    try:
        return coerce(type_name, value)
    except FieldTypeError as exc:
        raise ConfigError(
            f"config field {name}={value!r} is invalid; accepted: {exc.accepted}", name
        ) from exc


FIELD_HELP: dict[str, str] = {
    "base_model": "local diffusers directory of Cosmos-Predict2.5-2B (never downloaded)",
    "dataset": "dataset folder: the bag tools' output or the recipe's videos/*.mp4 + metas/*.txt layout",
    "output_dir": "run folder: checkpoints/, logs/ (TensorBoard), adapter/ (the final adapter folder); "
    "wandb/ and mlruns/ when report_to names them",
    "cache_dir": "precompute cache (latents, text embeddings); null: $XDG_CACHE_HOME/cosmos_ros/train_cache",
    "registry": "registry path; when set, the finished adapter is registered automatically",
    "adapter_name": "name to register the adapter under; null: the output folder's name",
    "adapter_type": "lora | dora",
    "rank": "LoRA rank r",
    "alpha": "LoRA alpha (scale = alpha / rank)",
    "target_modules": "module name suffixes inside each transformer block that get an adapter",
    "learning_rate": "AdamW peak learning rate (recipe: 2**-14.5)",
    "weight_decay": "AdamW weight decay",
    "adam_beta1": "AdamW beta1",
    "adam_beta2": "AdamW beta2",
    "adam_eps": "AdamW epsilon",
    "lr_schedule": "constant | constant_with_warmup | linear | cosine (decays to 0 at the last step)",
    "warmup_steps": "linear warm-up steps (optimizer steps)",
    "max_grad_norm": "gradient-norm clip; 0 disables",
    "max_steps": "optimizer steps to train; null: epochs decides",
    "epochs": "passes over the training clips (used when max_steps is null)",
    "batch_size": "clips per process per micro-step",
    "gradient_accumulation": "micro-steps per optimizer step",
    "seed": "seed for adapter init, data order, noise, sigmas, conditioning frames and prompt dropout",
    "height": "training height in pixels (multiple of 16)",
    "width": "training width in pixels (multiple of 16)",
    "num_frames": "frames per clip, 4k+1 (the first num_frames of each video are used)",
    "fps": "frame rate the clips are played at (for validation videos)",
    "frame_fit": "crop | letterbox: how frames of another aspect ratio are fitted",
    "prompt_prefix": "text put before every prompt (recipe: 'The robot arm is performing a task. ')",
    "max_sequence_length": "text tokens per prompt (the pipeline's max_sequence_length)",
    "validation_clips": "clips held out for validation when the dataset has no validation split",
    "cond_frame_probs": "[p(1), p(2)]: probability of 1 or 2 clean conditioning latent frames",
    "cond_timestep": "timestep given to the conditioning frames (the pipeline's conditional_frame_timestep)",
    "prompt_dropout": "probability of training a clip with the empty prompt",
    "logit_normal_mean": "mean of the logit-normal sigma distribution",
    "logit_normal_std": "std of the logit-normal sigma distribution",
    "sigma_shift": "shift applied to sigma: s' = shift*s / (1 + (shift-1)*s)",
    "device": "auto | cpu | cuda | cuda:N (auto: the local rank's GPU if any, else CPU)",
    "mixed_precision": "bf16 (frozen base in bf16, adapter in fp32, bf16 autocast) | no (all fp32)",
    "tf32": "allow TF32 matmuls on CUDA",
    "gradient_checkpointing": "full (recompute blocks) | save_attention (keep attention outputs) | none",
    "checkpoint_skip_blocks": "last N transformer blocks left un-checkpointed (spends memory for speed)",
    "compile_blocks": "torch.compile each transformer block",
    "fused_optimizer": "fused AdamW kernel (CUDA only; ignored on CPU)",
    "lean_adapter_forward": "adapter layers run training/lean_forward.py (same math as peft, no fp32 "
    "copies of activations); false: peft's own forward",
    "attention_backend": "diffusers attention backend (e.g. native, _native_cudnn, flash); null: default",
    "checkpoint_every": "save a resumable checkpoint every N optimizer steps (and at the end)",
    "keep_checkpoints": "keep the last K checkpoints",
    "resume": "auto (latest checkpoint in output_dir, if any) | none (refused while output_dir holds "
    "checkpoints) | a checkpoint folder; a checkpoint of other settings (base, dataset, adapter, seed, "
    "...) is refused, naming each field that differs",
    "validation_every": "validate every N optimizer steps (0: only at the end; none without clips)",
    "validation_steps": "denoising steps of the validation predictions",
    "log_every": "log loss and learning rate to the report_to trackers every N optimizer steps",
    "report_to": "where loss, learning rate and validation figures go (config as hyperparameters), as "
    "diffusers' --report_to: tensorboard (output_dir/logs, with validation GIFs) | wandb (offline in "
    "output_dir/wandb unless WANDB_MODE is set; pip install wandb) | mlflow (file store "
    "output_dir/mlruns and telemetry off, unless MLFLOW_TRACKING_URI or MLFLOW_DISABLE_TELEMETRY is "
    "set; pip install mlflow-skinny) | all (every installed one) | none, or a comma list such as "
    "tensorboard,mlflow",
}


def parse_override(item: str) -> tuple[str, Any]:
    """Parse ``key=value``; the value is read as YAML (numbers, lists, null, true/false)."""
    if "=" not in item:
        raise ValueError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if key not in FIELD_HELP:
        raise ValueError(f"override {item!r}: unknown field {key!r}; known fields: {sorted(FIELD_HELP)}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ValueError(f"override {item!r}: value is not valid YAML ({exc})") from exc
    if key in ("prompt_prefix", "adapter_name", "base_model", "dataset", "output_dir") and value is not None:
        value = raw if not isinstance(value, str) else value
    return key, value


def resolve_config_path(name_or_path: str | os.PathLike[str]) -> Path:
    """A YAML path, or the name of a shipped config (``lora_recipe``, ``tiny_cpu``, ...)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIG_DIR / f"{Path(name_or_path).stem}.yaml"
    if shipped.is_file() and path.suffix in ("", ".yaml") and len(path.parts) == 1:
        return shipped
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    raise FileNotFoundError(f"config {name_or_path} not found; give a YAML path or one of {names}")


def load_config(
    name_or_path: str | os.PathLike[str] | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """Load a YAML config (or the defaults) and apply ``key=value`` overrides in order.

    A refused value is reported with where it came from: ``--set rank=abc: config field rank=...``
    for an override, the YAML file's path for a value set there.
    """
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    source = "<defaults>"
    if name_or_path is not None:
        path = resolve_config_path(name_or_path)
        source = str(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of config fields, got {type(loaded).__name__}")
        data.update(loaded)
        origins.update({key: source for key in loaded})
    for item in overrides:
        key, value = parse_override(item)
        data[key] = value
        origins[key] = f"--set {item}"
    return TrainConfig.from_dict(data, source=source, origins=origins)


def save_config(config: TrainConfig, path: str | os.PathLike[str]) -> Path:
    from cosmos_ros.atomic import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def config_reference() -> str:
    """Every field with its default and meaning (for ``--help-config``)."""
    defaults = TrainConfig.__dataclass_fields__
    lines = []
    for name, text in FIELD_HELP.items():
        f = defaults[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        lines.append(f"  {name} (default {default!r}): {text}")
    return "\n".join(lines)
