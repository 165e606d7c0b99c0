"""Context parallelism for the Cosmos transformer (issue 22): two real gloo processes on the CPU.

The tiny random pipeline's transformer (real diffusers classes) runs plain in each process, then with
its tokens split over both ranks through cosmos_ros.model.context_parallel; the outputs must agree
within float32 noise. A negative control (the same slices, attention's all-to-all switched off)
shows the comparison can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import one_thread

_threads = pytest.fixture(autouse=True)(one_thread)

REPO = Path(__file__).resolve().parents[1]
ATOL = 1e-5  # float32 noise for outputs of magnitude ~2
#: What diffusers 0.42.1's only CPU backend with context parallelism says when ring attention asks it
#: for the log-sum-exp it merges partial results by (gloo has every collective ring needs).
RING_CPU_LIMIT = "Native attention does not support return_lse=True"
FORMS = ("per_sample_timestep", "per_frame_timestep")


def _torchrun(args: list[str], cwd: Path, timeout: float = 480) -> subprocess.CompletedProcess:
    # the worker runs as a script from tests/, so the repository must be on its path
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from cosmos_ros.model.tiny import make_tiny_model

    return Path(make_tiny_model(tmp_path_factory.mktemp("cp") / "tiny", seed=0))


@pytest.fixture(scope="module")
def ranks(tiny, tmp_path_factory) -> list[dict]:
    """Both ranks' reports of tests/context_parallel_worker.py (one torchrun launch for all checks)."""
    out = tmp_path_factory.mktemp("cp_out")
    proc = _torchrun([str(REPO / "tests" / "context_parallel_worker.py"), str(tiny), str(out)], cwd=out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def _assert_equal_to_plain(report: dict) -> None:
    assert report["tokens"] == 72  # 3 latent frames x 4 x 6 patches
    for form in FORMS:
        assert report[form]["max_abs_output"] > 0.5, form  # a real output, not zeros on both sides
        assert report[form]["max_abs_diff"] <= ATOL, (form, report[form])


def test_ulysses_on_two_processes_gives_the_plain_output(ranks):
    for report in ranks:
        _assert_equal_to_plain(report["ulysses"])
        assert report["ulysses_seed1_diff"] <= ATOL
        # each rank's self-attention got half of the 72 tokens: the split really happened
        assert report["ulysses_tokens_seen"] == [36]


def test_the_attention_exchange_is_what_makes_it_exact(ranks):
    # same token slices with the all-to-all switched off: each half attends only to itself
    for report in ranks:
        assert report["no_attention_exchange_diff"] > 1e-3


def test_learnable_positional_embedding_is_split_too(ranks):
    for report in ranks:
        _assert_equal_to_plain(report["learnable"])


def test_a_token_count_the_ranks_cannot_share_is_refused_in_one_line(ranks):
    for report in ranks:
        error = report["uneven_error"]
        assert error is not None and "\n" not in error
        assert (
            "latents of shape (1, 16, 3, 6, 10)" in error
            and "= 45 tokens" in error
            and "divisible by 2" in error
        )


def test_a_whole_pipeline_call_gives_the_plain_latents(ranks):
    """Cosmos2_5_PredictBasePipeline, image-to-world, 2 steps with guidance: the README's recipe."""
    for report in ranks:
        pipeline = report["pipeline"]
        assert pipeline["shape"] == [1, 16, 3, 8, 12] and pipeline["tokens_seen"] == [36]
        assert pipeline["max_abs_output"] > 0.5 and pipeline["max_abs_diff"] <= ATOL, pipeline


def test_the_runtime_opt_in_predicts_the_plain_frames(ranks):
    """CosmosRuntime.load(..., context_parallel=ContextParallelConfig(ulysses_degree=2)), fast engine."""
    for report in ranks:
        runtime = report["runtime"]
        assert runtime["shape"][1:] == [64, 96, 3] and runtime["tokens_seen"] == [36]
        assert runtime["frame_std"] > 1.0  # a real video, not a constant one on both sides
        assert runtime["max_abs_diff"] <= 1, runtime  # uint8 frames: at most a rounding step apart


def test_the_runtime_refuses_context_parallel_with_compile_or_offload(tiny):
    from diffusers import ContextParallelConfig

    from cosmos_ros.model.runtime import CosmosRuntime

    for option in ({"compile": True}, {"cpu_offload": True}):
        with pytest.raises(ValueError, match=r"context_parallel needs compile=False and cpu_offload=False"):
            CosmosRuntime.load(tiny, context_parallel=ContextParallelConfig(ulysses_degree=2), **option)


def test_disable_restores_the_stock_model(ranks):
    for report in ranks:
        assert report["disabled_diff"] == 0.0 and report["disabled_tokens_seen"] == [72]


def test_ring_attention_on_two_processes_gives_the_plain_output(ranks):
    for report in ranks:
        if report.get("ring_error") == RING_CPU_LIMIT:
            pytest.skip(
                f"ring attention on the CPU: diffusers' 'native' backend raises {RING_CPU_LIMIT!r}; the "
                "backends that return it (flash, _native_flash, _native_cudnn) need CUDA and bf16/fp16"
            )
        assert "ring_error" not in report, report["ring_error"]
        _assert_equal_to_plain(report["ring"])


def test_enable_refuses_what_it_cannot_do(tiny, tmp_path):
    import torch.distributed as dist
    from diffusers import CosmosTransformer3DModel
    from diffusers.models._modeling_parallel import ContextParallelConfig

    from cosmos_ros.model.context_parallel import enable_context_parallel

    transformer = CosmosTransformer3DModel.from_pretrained(tiny / "transformer")
    with pytest.raises(RuntimeError, match=r"needs torch.distributed initialised on every rank"):
        enable_context_parallel(transformer, ContextParallelConfig(ulysses_degree=2))
    with pytest.raises(TypeError, match=r"needs a CosmosTransformer3DModel, got Linear"):
        enable_context_parallel(torch.nn.Linear(2, 2), ContextParallelConfig(ulysses_degree=2))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with pytest.raises(ValueError, match=r"spans 2 ranks but the process group has 1"):
            enable_context_parallel(transformer, ContextParallelConfig(ulysses_degree=2))
        with pytest.raises(ValueError, match=r"ulysses_anything/ring_anything are not supported"):
            enable_context_parallel(
                transformer, ContextParallelConfig(ulysses_degree=2, ulysses_anything=True)
            )
        assert transformer._parallel_config is None  # a refusal leaves the model untouched
    finally:
        dist.destroy_process_group()
