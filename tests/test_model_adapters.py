# ruff: noqa: F811  (pytest fixtures imported from model_helpers are redefined as arguments)
"""Adapters on the tiny model: stock diffusers/peft LoRA + DoRA load, hot swap without base
reload, exact base reproduction, compatibility refusals, corrupt/pickle refusals."""

from __future__ import annotations

import numpy as np
import pytest
from model_helpers import PROMPT, frame, runtime, save_stock_lora, tiny_model_dir  # noqa: F401

from cosmos_ros.model import loading
from cosmos_ros.model.adapter_folder import WEIGHTS_NAME, AdapterMetadata, write_adapter_metadata
from cosmos_ros.model.runtime import AdapterIncompatible

FAST = {"steps": 2, "num_frames": 5, "seed": 7}


@pytest.fixture(scope="module")
def adapters(runtime, tmp_path_factory):
    root = tmp_path_factory.mktemp("adapters")
    return {
        "lora": save_stock_lora(runtime.pipe, root / "lora", rank=4, seed=1),
        "dora": save_stock_lora(
            runtime.pipe,
            root / "dora",
            rank=4,
            seed=2,
            use_dora=True,
            targets=("to_q", "to_v", "ff.net.0.proj", "ff.net.2"),
        ),
    }


def test_adapters_change_output_swap_without_reload_and_base_is_exact(runtime, frame, adapters):
    base = runtime.predict(frame, PROMPT, adapter=None, **FAST).frames
    loads_before = loading.base_load_count()

    runtime.load_adapter("lora", adapters["lora"], adapter_id="lora@v1")
    runtime.load_adapter("dora", adapters["dora"])
    assert runtime.loaded_adapters == ["dora", "lora"]
    assert runtime.active_adapter is None  # loading does not switch
    assert np.array_equal(runtime.predict(frame, PROMPT, **FAST).frames, base)

    with_lora = runtime.predict(frame, PROMPT, adapter="lora", **FAST)
    assert with_lora.metadata["adapter_id"] == "lora@v1" and runtime.active_adapter == "lora"
    assert not np.array_equal(with_lora.frames, base)
    with_dora = runtime.predict(frame, PROMPT, adapter="dora", **FAST).frames
    assert not np.array_equal(with_dora, base) and not np.array_equal(with_dora, with_lora.frames)
    # swapping back and forth is reproducible
    assert np.array_equal(runtime.predict(frame, PROMPT, adapter="lora", **FAST).frames, with_lora.frames)
    assert np.array_equal(runtime.predict(frame, PROMPT, adapter=None, **FAST).frames, base)

    runtime.set_active_adapter("dora")
    runtime.unload_adapter("dora")
    assert runtime.active_adapter is None and runtime.loaded_adapters == ["lora"]
    assert np.array_equal(runtime.predict(frame, PROMPT, **FAST).frames, base)
    runtime.unload_adapter("lora")
    assert runtime.loaded_adapters == []
    assert np.array_equal(runtime.predict(frame, PROMPT, **FAST).frames, base)
    assert loading.base_load_count() == loads_before  # no base reload at any point


def test_adapter_for_other_base_dims_is_refused(runtime, tmp_path):
    from diffusers import CosmosTransformer3DModel

    from cosmos_ros.model.tiny import _build_components

    other = _build_components(seed=0)["transformer"]
    config = dict(other.config)
    config["attention_head_dim"] = 16  # other target dims
    other = CosmosTransformer3DModel.from_config(config)

    class _Pipe:
        transformer = other

    folder = save_stock_lora(_Pipe, tmp_path / "other")
    with pytest.raises(AdapterIncompatible, match="different base model"):
        runtime.load_adapter("other", folder)
    assert runtime.loaded_adapters == []


def test_adapter_with_missing_modules_is_refused(runtime, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = save_stock_lora(runtime.pipe, tmp_path / "a")
    weights = load_file(folder / WEIGHTS_NAME)
    renamed = {k.replace("transformer_blocks.1.", "transformer_blocks.7."): v for k, v in weights.items()}
    save_file(renamed, folder / WEIGHTS_NAME)
    with pytest.raises(AdapterIncompatible, match=r"transformer_blocks\.7"):
        runtime.load_adapter("a", folder)


def test_adapter_recorded_for_other_base_fingerprint_is_refused(runtime, tmp_path):
    folder = save_stock_lora(runtime.pipe, tmp_path / "fp")
    write_adapter_metadata(
        folder, AdapterMetadata(adapter_type="lora", rank=4, alpha=4, base_fingerprint="sha256:00")
    )
    with pytest.raises(AdapterIncompatible, match="sha256:00"):
        runtime.load_adapter("fp", folder)
    write_adapter_metadata(
        folder, AdapterMetadata(adapter_type="lora", rank=4, alpha=4, base_fingerprint=runtime.fingerprint)
    )
    runtime.load_adapter("fp", folder)
    runtime.unload_adapter("fp")


def test_corrupt_and_pickled_adapters_are_refused(runtime, tmp_path):
    folder = save_stock_lora(runtime.pipe, tmp_path / "bad")
    path = folder / WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AdapterIncompatible, match="corrupt"):
        runtime.load_adapter("bad", folder)

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_lora_weights.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="never loaded"):
        runtime.load_adapter("pickled", pickled)
    with pytest.raises(ValueError, match="only safetensors"):
        runtime.load_adapter("pickled", pickled / "pytorch_lora_weights.bin")
    assert runtime.loaded_adapters == []


def test_sorted_safetensors_metadata_gives_the_same_bytes_for_the_same_adapter(tmp_path) -> None:
    import hashlib

    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from cosmos_ros.model.adapter_folder import sort_safetensors_metadata

    tensors = {"b": torch.arange(6.0).reshape(2, 3), "a": torch.ones(3, dtype=torch.bfloat16)}
    metadata = {"format": "pt", "lora_adapter_metadata": '{"r": 8, "note": "\u00e9\\n"}', "alpha": "1"}
    digests = set()
    for i in range(12):  # safetensors' own order varies between writes (a hash map)
        path = tmp_path / f"{i}.safetensors"
        save_file(tensors, str(path), metadata=metadata)
        sort_safetensors_metadata(path)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    loaded = load_file(str(path))
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())
    with safe_open(str(path), framework="pt") as handle:
        assert handle.metadata() == metadata
    assert not sort_safetensors_metadata(path)  # already sorted: left as it is
