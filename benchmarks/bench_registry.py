"""Benchmark: adapter registry costs that a user or a node waits on.

    python benchmarks/bench_registry.py [--size-mb 128] [--records 1000]

- register of one adapter of ``--size-mb`` (hash + atomic copy + header check + insert);
- resolve_for_loading of it (status/base checks + full re-hash), i.e. the integrity cost a node
  pays before every load;
- catalog() / list() / get() with ``--records`` versions registered (what a node lists);
- verify() over everything.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from cosmos_ros.model.adapter_folder import WEIGHTS_NAME
from cosmos_ros.registry import open_registry

BASE = "sha256:" + "ab" * 32


def _adapter(folder: Path, size_mb: float, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per_tensor = 32 * 2048  # a rank-32 LoRA A matrix for a 2048-wide layer
    count = max(1, int(size_mb * 1024 * 1024 / 4 / per_tensor / 2))
    tensors = {}
    for i in range(count):
        prefix = f"transformer.transformer_blocks.{i // 6}.m{i % 6}"
        tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((32, 2048), dtype=np.float32)
        tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((2048, 32), dtype=np.float32)
    save_file(tensors, str(folder / WEIGHTS_NAME))
    return folder


def _timed(fn, repeat: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=128.0, help="adapter size (default: 128)")
    parser.add_argument("--records", type=int, default=1000, help="versions for the listing (default: 1000)")
    args = parser.parse_args()
    logging.getLogger("cosmos_ros.registry").setLevel(logging.ERROR)  # identical small adapters
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        big = _adapter(root / "big", args.size_mb, 0)
        small = _adapter(root / "small", 0.05, 1)
        size = (big / WEIGHTS_NAME).stat().st_size
        with open_registry(root / "registry") as registry:
            results: dict[str, float] = {"artifact_mb": size / 2**20}
            results["register_big_s"] = _timed(
                lambda: registry.register(
                    big, "big", overrides={"base_fingerprint": BASE}, status="candidate"
                )
            )
            # No evaluation to attach here: a recorded forced approval, as the registry allows.
            reason = "benchmark adapter, not evaluated"
            registry.approve("big@1", by="bench", note="bench", force_reason=reason)
            results["resolve_for_loading_big_s"] = _timed(
                lambda: registry.resolve_for_loading("big", base_fingerprint=BASE), repeat=3
            )
            start = time.perf_counter()
            for i in range(args.records):
                registry.register(small, f"task{i % 20}", overrides={"base_fingerprint": BASE})
            results["register_small_mean_s"] = (time.perf_counter() - start) / args.records
            results["records"] = args.records + 1
            results["catalog_s"] = _timed(registry.catalog, repeat=5)
            results["list_all_s"] = _timed(registry.list, repeat=3)
            results["get_s"] = _timed(lambda: registry.get("task7"), repeat=50)
            results["verify_s"] = _timed(registry.verify)
    print(json.dumps({k: round(v, 5) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
