"""The model card (``README.md``) of an adapter folder, in the Hugging Face Hub's format.

Why: an adapter folder is pushed to the Hub as it is (``huggingface-cli upload``); the Hub reads
the card's YAML front matter (base_model, library_name, tags, model-index results) to link the
adapter to its base, show its metrics and state that the base model's license applies. Everything
the card says comes from the adapter's own ``adapter_metadata.json`` (plus the base model folder
and the dataset manifest where they are still on disk), so the trainer and a later export write the
same card for the same adapter.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from cosmos_ros.model.adapter_folder import WEIGHTS_NAME, AdapterMetadata

#: File name of the card inside an adapter folder (the name the Hub shows).
CARD_NAME = "README.md"
#: Validation figures of a run -> (model-index metric type, readable name).
_VALIDATION_METRICS: dict[str, tuple[str, str]] = {
    "val_psnr": ("psnr", "PSNR (dB) of few-step predictions on held-out clips"),
    "val_ssim": ("ssim", "SSIM of few-step predictions on held-out clips"),
    "val_loss": ("loss", "flow-matching loss on fixed draws of held-out clips"),
}
_HUB_CACHE_DIR = re.compile(r"^models--([^/]+?)--(.+)$")


def _front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a card (``---`` ... ``---``), {} when there is none or it is broken."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return {}
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _base_card(base_dir: Path) -> dict[str, Any]:
    """Front matter of the base model's own card: in its folder or the repository root above it.

    The diffusers weights sit in ``<repo>/diffusers/base/post-trained``-like subfolders, the card at
    the repository root, so up to three folders up are searched.
    """
    for folder in (base_dir, *list(base_dir.parents)[:3]):
        card = folder / CARD_NAME
        if card.is_file():
            try:
                return _front_matter(card.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                return {}
    return {}


def base_model_id(base_model: str | os.PathLike[str]) -> str:
    """The base model's name: a Hub id where the path tells one, else the folder's own name.

    Order: the base card's ``model-index`` name; a Hub cache path (``models--ORG--NAME``) gives
    ``ORG/NAME``; a ``.../NAME/diffusers/...`` download gives ``NAME``; otherwise the folder name.
    """
    path = Path(base_model).expanduser()
    index = _base_card(path).get("model-index")
    if isinstance(index, list) and index and isinstance(index[0], dict) and index[0].get("name"):
        return str(index[0]["name"])
    parts = path.resolve().parts if path.exists() else path.parts
    for part in reversed(parts):
        hub = _HUB_CACHE_DIR.match(part)
        if hub:
            return f"{hub.group(1)}/{hub.group(2)}"
    if "diffusers" in parts:
        at = len(parts) - 1 - parts[::-1].index("diffusers")
        if at > 0:
            return parts[at - 1]
    return path.name or str(path)


def dataset_provenance(dataset: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Clip count, splits and source bags (with sha256) of a dataset folder, {} when it is gone.

    Read straight from ``manifest.jsonl`` (no video probing): a card is written after training, and
    a plain ``videos/`` + ``metas/`` folder has no manifest and so no bags to name.
    """
    if not dataset:
        return {}
    manifest = Path(dataset).expanduser() / "manifest.jsonl"
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    bags: dict[str, str] = {}
    splits: dict[str, int] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        splits[str(record.get("split", "train"))] = splits.get(str(record.get("split", "train")), 0) + 1
        if record.get("source_bag"):
            bags.setdefault(str(record["source_bag"]), str(record.get("source_bag_sha256", "")))
    return {
        "clips": sum(splits.values()),
        "splits": dict(sorted(splits.items())),
        "bags": [{"bag": bag, "sha256": digest} for bag, digest in sorted(bags.items())],
    }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and value == value else None


def model_card(metadata: AdapterMetadata, name: str | None = None) -> str:
    """The card text (front matter + body) of an adapter described by ``metadata``.

    ``name``: the adapter's name in the card's title and model-index (default: the base's name plus
    the adapter type, e.g. ``Cosmos-Predict2.5-2B-lora``).
    """
    cfg = metadata.training_config
    base_path = str(cfg.get("base_model") or "")
    base = base_model_id(base_path) if base_path else "unknown"
    base_card = _base_card(Path(base_path).expanduser()) if base_path else {}
    name = name or f"{base.rsplit('/', 1)[-1]}-{metadata.adapter_type}"
    provenance = dataset_provenance(metadata.dataset_path or cfg.get("dataset"))
    tags = [metadata.adapter_type, "lora"] if metadata.adapter_type == "dora" else ["lora"]
    tags += ["cosmos", "cosmos-predict2.5", "robotics", "world-model", "image-to-video", "cosmos_ros"]

    front: dict[str, Any] = {"base_model": base, "library_name": "diffusers"}
    for key in ("license", "license_name", "license_link"):  # the base's license governs the adapter
        if base_card.get(key):
            front[key] = base_card[key]
    front |= {"tags": tags, "pipeline_tag": "image-to-video"}
    results = [
        {"type": kind, "name": label, "value": round(value, 6)}
        for key, (kind, label) in _VALIDATION_METRICS.items()
        if (value := _number(metadata.metrics.get(key))) is not None
    ]
    if results:
        dataset_name = Path(str(metadata.dataset_path or cfg.get("dataset") or "dataset")).name
        front["model-index"] = [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": "image-to-video", "name": "robot video prediction"},
                        "dataset": {"name": f"{dataset_name} (validation clips)", "type": dataset_name},
                        "metrics": results,
                    }
                ],
            }
        ]
    front["cosmos_ros"] = {
        "base_fingerprint": metadata.base_fingerprint,
        "dataset_path": metadata.dataset_path,
        "dataset_manifest_sha256": metadata.dataset_manifest_sha256,
        "source_bags": [bag["bag"] for bag in provenance.get("bags", [])],
        "code_version": metadata.code_version,
    }
    head = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{head}---\n\n{_body(metadata, name, base, base_card, provenance, results)}"


def _body(
    metadata: AdapterMetadata,
    name: str,
    base: str,
    base_card: dict[str, Any],
    provenance: dict[str, Any],
    results: list[dict[str, Any]],
) -> str:
    cfg = metadata.training_config
    kind = "DoRA" if metadata.adapter_type == "dora" else "LoRA"
    steps = metadata.metrics.get("steps", cfg.get("max_steps"))
    linked = f"[{base}](https://huggingface.co/{base})" if "/" in base else f"`{base}`"
    lines = [
        f"# {name}",
        "",
        f"A {kind} adapter for {linked} trained with cosmos_ros "
        "(`cosmos-ros train`) on robot demonstration clips. Load it into the stock diffusers pipeline:",
        "",
        "```python",
        "from diffusers import Cosmos2_5_PredictBasePipeline",
        "",
        "# the base's diffusers weights (Hub: revision diffusers/base/post-trained) or its local folder",
        f'pipe = Cosmos2_5_PredictBasePipeline.from_pretrained("{base}")',
        f'pipe.load_lora_weights("path/to/this/folder", weight_name="{WEIGHTS_NAME}")',
        "```",
        "",
        "## Training",
        "",
        "| setting | value |",
        "| --- | --- |",
    ]
    settings = {
        "adapter": kind,
        "rank": metadata.rank,
        "alpha": metadata.alpha,
        "target modules": ", ".join(metadata.target_modules),
        "steps": steps,
        "learning rate": cfg.get("learning_rate"),
        "batch size": cfg.get("batch_size"),
        "seed": cfg.get("seed"),
        "frames x height x width": f"{cfg.get('num_frames')} x {cfg.get('height')} x {cfg.get('width')}",
        "mixed precision": cfg.get("mixed_precision"),
        "final training loss": metadata.metrics.get("final_loss"),
        "started / finished": f"{metadata.started_at} / {metadata.finished_at}",
    }
    lines += [f"| {key} | {value} |" for key, value in settings.items()]
    lines += [
        "",
        "## Dataset",
        "",
        f"- folder: `{metadata.dataset_path}`",
        f"- manifest sha256: `{metadata.dataset_manifest_sha256}`",
    ]
    if provenance:
        splits = ", ".join(f"{split}: {count}" for split, count in provenance["splits"].items())
        lines.append(f"- clips: {provenance['clips']} ({splits})")
        for bag in provenance["bags"]:
            lines.append(f"- from bag `{bag['bag']}` (sha256 `{bag['sha256'] or 'not recorded'}`)")
    lines += ["", "## Evaluation", ""]
    if results:
        lines += ["Validation at the end of training (held-out clips, few-step sampler):", ""]
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {r['name']} | {r['value']:.4g} |" for r in results]
    else:
        lines.append("This run held out no validation clips; evaluate with `cosmos-ros eval`.")
    license_name = base_card.get("license_name") or base_card.get("license")
    licence = f" ({license_name})" if license_name else ""
    lines += [
        "",
        "## License",
        "",
        f"This adapter modifies {base} and is a derivative of it: the license of the base model{licence} "
        "applies to it and to everything generated with it. Read and accept that license before use.",
        "",
    ]
    return "\n".join(lines)
