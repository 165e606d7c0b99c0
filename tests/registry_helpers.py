"""Shared fixtures for the registry tests: real safetensors adapter folders with diffusers LoRA keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from cosmos_ros.model.adapter_folder import WEIGHTS_NAME, AdapterMetadata, write_adapter_metadata

BASE_FP = "sha256:" + "ab" * 32
OTHER_BASE_FP = "sha256:" + "cd" * 32


def lora_state_dict(seed: int, rank: int = 4, blocks: int = 2, dim: int = 32) -> dict[str, np.ndarray]:
    """A tiny LoRA state dict with the key names diffusers writes for the Cosmos transformer."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {}
    for block in range(blocks):
        for module in ("attn1.to_q", "attn1.to_v", "ff.net.0.proj"):
            prefix = f"transformer.transformer_blocks.{block}.{module}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((rank, dim), dtype=np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((dim, rank), dtype=np.float32)
    return tensors


def make_adapter_folder(
    folder: Path,
    seed: int = 0,
    *,
    rank: int = 4,
    with_metadata: bool = True,
    base_fingerprint: str | None = BASE_FP,
    extra_bytes: int = 0,
) -> Path:
    """Write an adapter folder (weights + adapter_metadata.json); ``extra_bytes`` pads the weights."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = lora_state_dict(seed, rank=rank)
    if extra_bytes:
        tensors["transformer.padding.lora_B.weight"] = np.zeros((extra_bytes // 4, 1), dtype=np.float32)
    save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    if with_metadata:
        write_adapter_metadata(
            folder,
            AdapterMetadata(
                adapter_type="lora",
                rank=rank,
                alpha=float(rank),
                target_modules=["to_q", "to_v", "ff.net.0.proj"],
                base_fingerprint=base_fingerprint,
                dataset_manifest_sha256="f0" * 32,
                dataset_path="datasets/ur5e_pick",
                training_config={"lr": 1e-4, "steps": 100 + seed, "optimizer": {"name": "adamw"}},
                code_version="0.1.0+g1234567",
                metrics={"final_loss": 0.1 * (seed + 1)},
            ),
        )
    return folder


def flip_one_byte(path: Path, offset: int = -1) -> None:
    """Tamper with a (read-only) blob: change one byte in place."""
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def register_many(registry_dir: str, folder: str, name: str, count: int, barrier: Any) -> list[str]:
    """Worker for the multiprocessing tests: wait for the others, then register ``count`` versions."""
    from cosmos_ros.registry import open_registry

    with open_registry(registry_dir) as registry:
        barrier.wait(timeout=60)
        return [
            registry.register(folder, name, created_by=f"pid{__import__('os').getpid()}").adapter_id
            for _ in range(count)
        ]


def eval_results(passed: bool | None = True, base: str = BASE_FP, psnr: float = 24.5) -> dict[str, Any]:
    """Evaluation results in the schema 'cosmos-ros eval' attaches; ``passed=None``: an ungated run."""
    results: dict[str, Any] = {
        "metrics": {
            "psnr": {
                "mean": psnr,
                "ci95": [psnr - 0.5, psnr + 0.5],
                "n": 4,
                "delta_vs_base": 0.8,
                "delta_ci95": [0.3, 1.3],
                "base_mean": psnr - 0.8,
            }
        },
        "dataset_manifest_sha256": "f0" * 32,
        "split": "val",
        "clips": 4,
        "seeds": [0],
        "base_fingerprint": base,
        "code_version": "0.1.0+g1234567",
    }
    if passed is not None:
        results["passed"] = passed
        results["gate"] = {
            "promote_to": "candidate",
            "rules": [{"metric": "psnr", "margin": 0.5, "require_ci": False}],
            "checks": [{"metric": "psnr", "margin": 0.5, "require_ci": False, "passed": passed}],
        }
    return results


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``cosmos-ros adapters ARGS`` in this process: (exit code, stdout, stderr)."""
    from cosmos_ros.cli import main

    code = main(["adapters", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_error(code: int, err: str, *fragments: str) -> None:
    """One ``cosmos-ros: error:`` line, exit 1, no traceback, holding every fragment."""
    assert code == 1, err
    assert "Traceback" not in err and err.startswith("cosmos-ros: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
