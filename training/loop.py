"""The training loop: frozen bf16 base, fp32 adapter, cached inputs, exact resume, data parallel.

Data parallel runs use ``torch.distributed`` directly (NCCL on GPUs, gloo on CPUs) with the
environment ``torchrun`` and ``accelerate launch`` both set (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). Gradients of the adapter (the only trainable
tensors, ~46 M for the recipe) are averaged with one flat all-reduce per optimizer step, which
leaves the transformer unwrapped, so per-block compilation and checkpointing stay simple.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from cosmos_ros.progress import ProgressCallback, Stopwatch

from .adapters import attach_adapter, load_trainable_state, trainable_state
from .checkpoints import (
    check_resume_matches,
    checkpoint_path,
    find_resume_point,
    json_safe,
    load_adapter_tensors,
    load_checkpoint,
    read_checkpoint_info,
    recorded_losses,
    run_identity,
    save_checkpoint,
    verify_checkpoint,
)
from .config import TrainConfig, save_config
from .data import CachedLatents, SampleOrder, load_clips
from .lean_forward import install_lean_forward
from .objective import build_inputs, draw_sample, per_sample_loss, predict_velocity, sample_generator
from .output import ensure_registered, finished_adapter, write_output
from .trackers import open_run_logger, resolve_report_to
from .validation import Validator

log = logging.getLogger(__name__)

#: aten ops whose outputs "save_attention" checkpointing keeps (recomputing attention is 2/3 of a forward).
_ATTENTION_OPS = (
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_efficient_attention",
    "_flash_attention_forward",
    "_efficient_attention_forward",
)


@dataclass
class TrainResult:
    """What a run did (also what the tests check)."""

    adapter_dir: Path | None
    losses: list[float]
    steps_done: int
    probe_loss_start: float
    probe_loss_end: float
    metrics: dict[str, Any] = field(default_factory=dict)
    #: True when output_dir held a run already trained to its last step: nothing was trained or written.
    already_complete: bool = False
    #: The registry version that holds the adapter (config field registry), and whether this call
    #: registered it (False: it was registered before, e.g. by the run that finished it).
    registered_as: str | None = None
    registered_now: bool = False


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped the run; ``checkpoint`` (of ``step``) is where a re-run continues from.

    After one signal during the steps that is a checkpoint of the last finished step, written for it.
    ``signum`` is the signal (the CLI exits with 128 + signum, as a shell reports a killed job); in a
    data-parallel run, the one any process got, so all of them exit alike.
    """

    def __init__(self, step: int, checkpoint: Path, signum: int = signal.SIGINT) -> None:
        super().__init__(
            f"training interrupted; its latest checkpoint (step {step}) is {checkpoint}. "
            "Running again with the same config and resume=auto (the default) continues from it"
        )
        self.step = step
        self.checkpoint = checkpoint
        self.signum = int(signum)


class _FirstInterrupt(KeyboardInterrupt):
    """The first Ctrl-C, raised only inside :meth:`_StopRequest.interruptible` blocks."""


class _StopRequest:
    """While active, the first SIGINT or SIGTERM asks the loop to stop at the end of the current step.

    The step in progress is finished (never left half-applied to the optimizer), then a checkpoint
    is written and :class:`TrainingInterrupted` raised. SIGTERM is what schedulers (SLURM, k8s,
    torchrun stopping its workers) send before they kill a job, so a preempted run keeps its
    progress too. A further signal aborts at once, except within a second of the first: a terminal
    and a launcher (torchrun forwards the signal) can deliver one Ctrl-C twice. Only installed in
    the main thread and for signals that are not ignored.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, announce: bool) -> None:
        self.announce = announce
        self.requested = False
        #: The signal that asked for the stop (for the exit status: 128 + signum).
        self.signum = signal.SIGINT
        self._first = 0.0
        self._raise_first = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Work that may stop mid-way (it changes no training state): the first signal raises inside."""
        self._raise_first = True
        try:
            yield
        finally:
            self._raise_first = False

    def _handle(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if self.requested:
            if now - self._first < 1.0:
                return
            raise KeyboardInterrupt
        self.requested, self._first, self.signum = True, now, signum
        if self.announce:  # os.write: print() may be mid-write on stderr (the progress bar) right now
            what = b"interrupt" if signum == signal.SIGINT else b"SIGTERM"
            os.write(
                sys.stderr.fileno(),
                b"\ncosmos-ros train: " + what + b" received; finishing this step and writing a checkpoint "
                b"(Ctrl-C again to abort without it)\n",
            )
        if self._raise_first:
            raise _FirstInterrupt


@dataclass
class DistInfo:
    world: int
    rank: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_kind: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
        return DistInfo(world, dist.get_rank(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistInfo(1, 0, 0)


def pick_device(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"config device={cfg.device!r} but no CUDA device is available; use device=cpu")
    return device


# ---------------------------------------------------------------------------------------- model speed-ups
def _attention_policy(ctx: Any, op: Any, *args: Any, **kwargs: Any) -> Any:
    from torch.utils.checkpoint import CheckpointPolicy

    name = getattr(op, "__name__", str(op)).split(".")[0]
    if name in _ATTENTION_OPS:
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def prepare_blocks(transformer: torch.nn.Module, mode: str, skip_last: int, compile_blocks: bool) -> None:
    """Per-block activation checkpointing (full or keeping attention outputs) and compilation.

    Done by replacing each block's ``forward`` on the instance, so module names (and so the
    adapter's state-dict keys) stay those of the stock model.
    """
    from torch.utils.checkpoint import checkpoint, create_selective_checkpoint_contexts

    blocks = list(transformer.transformer_blocks)
    for index, block in enumerate(blocks):
        inner = block.forward
        use_ckpt = mode != "none" and index < len(blocks) - skip_last
        if use_ckpt:
            context_fn = (
                functools.partial(create_selective_checkpoint_contexts, _attention_policy)
                if mode == "save_attention"
                else None
            )

            def forward(*args: Any, _inner: Any = inner, _ctx: Any = context_fn, **kwargs: Any) -> Any:
                if not torch.is_grad_enabled():
                    return _inner(*args, **kwargs)
                extra = {"context_fn": _ctx} if _ctx is not None else {}
                return checkpoint(_inner, *args, use_reentrant=False, **extra, **kwargs)

            block.forward = forward
        if compile_blocks:
            block.forward = torch.compile(block.forward, dynamic=False)


def make_optimizer(
    params: list[torch.nn.Parameter], cfg: TrainConfig, device: torch.device
) -> torch.optim.AdamW:
    fused = bool(cfg.fused_optimizer and device.type == "cuda")
    return torch.optim.AdamW(
        params,
        lr=cfg.learning_rate,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
        fused=fused,
        foreach=None if fused else True,
    )


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> Any:
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        cfg.lr_schedule, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=total_steps
    )


def _allreduce_mean(tensors: list[torch.Tensor], world: int) -> None:
    import torch.distributed as dist
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    flat = _flatten_dense_tensors(tensors)
    dist.all_reduce(flat)
    flat /= world
    for dst, src in zip(tensors, _unflatten_dense_tensors(flat, tensors), strict=True):
        dst.copy_(src)


# ---------------------------------------------------------------------------------------- the run
def train(
    cfg: TrainConfig,
    *,
    progress: ProgressCallback | None = None,
    stop_after_steps: int | None = None,
) -> TrainResult:
    """Train an adapter as ``cfg`` says; return the losses and the adapter folder.

    A run resumes from the latest checkpoint in ``output_dir`` (``resume=auto``) only when the
    checkpoint was written with the same base model, dataset and training settings; otherwise a
    ``ValueError`` names every field that differs, and a checkpoint whose files differ from the
    sha256 it records is refused by name. A run already trained to its last step is complete: its
    adapter folder is left as it is (``already_complete`` in the result), written from the last
    checkpoint only when missing or from another run, and registered (``cfg.registry``) only where
    the registry does not hold it yet. Metrics of a resumed run cover the whole run
    (``probe_loss_start`` is the loss before its first step).

    Ctrl-C (SIGINT) during the steps finishes the current step, writes a checkpoint of it and raises
    :class:`TrainingInterrupted`. ``stop_after_steps`` ends the run early after writing a
    checkpoint (an interruption that a later call with ``resume=auto`` continues from); no adapter
    folder is written then.
    """
    from cosmos_ros.model import loading
    from cosmos_ros.model.fingerprint import model_fingerprint

    from .precompute import PreprocessParams, default_cache_dir, precompute

    started_at = datetime.now(timezone.utc).isoformat()
    if not cfg.base_model:
        raise ValueError("config field base_model is empty; set it to a local Cosmos-Predict2.5-2B directory")
    if not cfg.dataset:
        raise ValueError("config field dataset is empty; set it to a dataset folder")
    # A tracker whose package is missing stops the run here, before any model or data is loaded.
    report_to = resolve_report_to(cfg.report_to)
    device = pick_device(cfg)
    dist_info = setup_distributed(device.type)
    mixed = cfg.mixed_precision == "bf16"
    dtype = torch.bfloat16 if mixed else torch.float32
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
        torch.backends.cudnn.allow_tf32 = cfg.tf32

    def autocast() -> Any:
        if not mixed:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=torch.bfloat16)

    output_dir = Path(cfg.output_dir)
    split = load_clips(cfg.dataset, cfg.num_frames, cfg.validation_clips)
    layout = loading.validate_model_dir(cfg.base_model)
    fingerprint = model_fingerprint(cfg.base_model)
    if any(t.startswith("crossattn_proj") for t in cfg.target_modules):
        raise ValueError(
            "target_modules may not include crossattn_proj: its output is precomputed and cached"
        )
    global_batch = cfg.batch_size * dist_info.world * cfg.gradient_accumulation
    order = SampleOrder(len(split.train), global_batch, cfg.seed)
    total_steps = cfg.max_steps if cfg.max_steps is not None else int(cfg.epochs) * order.steps_per_epoch
    identity = run_identity(
        cfg,
        base_fingerprint=fingerprint,
        dataset_manifest_sha256=split.manifest_sha256,
        train_clip_ids=[c.clip_id for c in split.train],
        global_batch=global_batch,
    )

    # ---- resume point: checked before anything expensive happens
    resume_from = find_resume_point(output_dir, cfg.resume)
    info: dict[str, Any] = {}
    start_step = 0
    if resume_from is not None:
        info = read_checkpoint_info(resume_from)
        verify_checkpoint(resume_from, info)
        check_resume_matches(resume_from, info, identity, output_dir)
        start_step = int(info["step"])
        if start_step > total_steps:
            raise ValueError(
                f"checkpoint {resume_from} is at step {start_step}, past this run's {total_steps} steps "
                f"(max_steps={cfg.max_steps}, epochs={cfg.epochs}); set max_steps to at least {start_step}, "
                "resume from an earlier checkpoint (--set resume=CHECKPOINT_FOLDER) or use a new output_dir"
            )
        if start_step == total_steps:
            finished = _finished_run(output_dir, info, identity)
            if finished is not None:
                log.info(
                    "run in %s is already complete (%d of %d steps); adapter %s left as it is",
                    output_dir,
                    start_step,
                    total_steps,
                    finished.adapter_dir,
                )
                if cfg.registry and dist_info.main and finished.adapter_dir is not None:
                    # Registering is part of finishing: a run stopped between the two registers now.
                    name = cfg.adapter_name or output_dir.name
                    found = ensure_registered(cfg.registry, finished.adapter_dir, name)
                    finished.registered_as, finished.registered_now = found
                return finished
    transformer = loading.load_transformer(layout, dtype)

    # ---- precompute (main process first; the others then find everything cached)
    params = PreprocessParams(
        base_fingerprint=fingerprint,
        height=cfg.height,
        width=cfg.width,
        num_frames=cfg.num_frames,
        frame_fit=cfg.frame_fit,
        prompt_prefix=cfg.prompt_prefix,
        max_sequence_length=cfg.max_sequence_length,
        compute_dtype=str(dtype).removeprefix("torch."),
    )
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    result_cache = None
    for turn in (True, False):
        if dist_info.main == turn:
            result_cache = precompute(
                cfg.base_model,
                params,
                cache_dir,
                split.train,
                split.val,
                projection=transformer.crossattn_proj,
                device=device,
                dtype=dtype,
                progress=progress if dist_info.main else None,
            )
        if dist_info.world > 1:
            torch.distributed.barrier()
    assert result_cache is not None
    train_data = CachedLatents(result_cache.train_files, result_cache.empty_text_file)
    val_data = CachedLatents(result_cache.val_files, result_cache.empty_text_file)

    # ---- model: frozen base, adapter, cached text bypasses the projection
    torch.manual_seed(cfg.seed)
    trainable = attach_adapter(transformer, cfg.adapter_type, cfg.rank, cfg.alpha, cfg.target_modules)
    if cfg.lean_adapter_forward:
        install_lean_forward(transformer)
    transformer.crossattn_proj = torch.nn.Identity()
    transformer.to(device)
    if cfg.attention_backend:
        transformer.set_attention_backend(cfg.attention_backend)
    prepare_blocks(transformer, cfg.gradient_checkpointing, cfg.checkpoint_skip_blocks, cfg.compile_blocks)
    transformer.train()

    # ---- schedule
    optimizer = make_optimizer(trainable, cfg, device)
    scheduler = make_scheduler(optimizer, cfg, total_steps)

    # ---- resume
    losses: list[float] = []
    step_times: list[float] = []
    if resume_from is not None:
        load_trainable_state(transformer, load_adapter_tensors(resume_from), str(resume_from))
        load_checkpoint(resume_from, optimizer, scheduler)
        losses = recorded_losses(info)
        step_times = [float(v) for v in info.get("step_seconds", [])]
        started_at = str(info.get("started_at") or started_at)
        log.info("resumed from %s at step %d", resume_from, start_step)
    if dist_info.main:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, output_dir / "config.yaml")

    reporter = None
    if dist_info.main:
        reporter = open_run_logger(report_to, output_dir, cfg.to_dict(), cpu=device.type == "cpu")

    from .validation import fixed_draw_loss

    probe_items = [train_data[i] for i in range(min(8, len(train_data)))]

    def probe() -> float:
        transformer.eval()
        value = fixed_draw_loss(
            transformer,
            probe_items,
            cfg,
            stream="probe",
            draws_per_clip=2,
            device=device,
            dtype=dtype,
            autocast=autocast,
        )
        transformer.train()
        return value

    recorded_probe = info.get("probe_loss_start")
    probe_start = float(recorded_probe) if isinstance(recorded_probe, (int, float)) else probe()
    validator = Validator(cfg, layout, val_data, split.val, device, dtype, autocast) if split.val else None

    # ---- loop
    end_step = total_steps if stop_after_steps is None else min(total_steps, stop_after_steps)
    watch = Stopwatch(progress, "train", total_steps)
    val_metrics: dict[str, float] = {}
    stop = _StopRequest(announce=dist_info.main)
    last_checkpoint = (start_step, resume_from) if resume_from is not None else None

    def write_checkpoint(done: int) -> Path:
        if dist_info.main:
            epoch, within = divmod(done, order.steps_per_epoch)
            save_checkpoint(
                output_dir,
                done,
                trainable_state(transformer),
                optimizer,
                scheduler,
                {
                    "epoch": epoch,
                    "step_in_epoch": within,
                    "losses": losses,
                    "step_seconds": step_times,
                    "probe_loss_start": probe_start,
                    "started_at": started_at,
                    "base_fingerprint": fingerprint,
                    "run": identity,
                },
                cfg.keep_checkpoints,
            )
        if dist_info.world > 1:
            torch.distributed.barrier()
        return checkpoint_path(output_dir, done)

    try:
        with stop:
            for step in range(start_step, end_step):
                t0 = time.perf_counter()
                loss_sum = torch.zeros((), dtype=torch.float64, device=device)
                for micro in range(cfg.gradient_accumulation):
                    positions = [
                        (micro * dist_info.world + dist_info.rank) * cfg.batch_size + i
                        for i in range(cfg.batch_size)
                    ]
                    batch = _make_batch(cfg, order, train_data, step, positions, device, dtype)
                    with autocast():
                        pred = predict_velocity(transformer, batch.inputs, batch.text)
                    sample_losses = per_sample_loss(pred, batch.inputs)
                    (sample_losses.mean() / cfg.gradient_accumulation).backward()
                    loss_sum += sample_losses.detach().double().sum()
                grads = [p.grad for p in trainable if p.grad is not None]
                stopping = stop.requested
                if dist_info.world > 1:
                    _allreduce_mean(grads, dist_info.world)
                    # The stop request rides along with the loss, so every process stops after the same step,
                    # and with the same signal (exit status), also one that got none (another node's).
                    got = [float(stopping and stop.signum == s) for s in stop.SIGNALS]
                    flags = torch.cat([loss_sum.view(1), loss_sum.new_tensor(got)])
                    torch.distributed.all_reduce(flags)
                    hits = [s for s, n in zip(stop.SIGNALS, flags[1:].tolist(), strict=True) if n > 0]
                    loss_sum, stopping = flags[0], bool(hits)
                    if hits:
                        stop.signum = hits[-1]  # SIGTERM (a scheduler's) over Ctrl-C
                grad_norm = (
                    float(torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm))
                    if cfg.max_grad_norm > 0
                    else 0.0
                )
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                loss = float(loss_sum) / global_batch
                losses.append(loss)
                done = step + 1
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                step_times.append(time.perf_counter() - t0)
                if dist_info.world == 1:
                    stopping = stop.requested
                lr = scheduler.get_last_lr()[0]
                watch.report(done, loss=loss, step_s=step_times[-1], lr=lr)
                if reporter is not None and (done % cfg.log_every == 0 or done == end_step):
                    reporter.log(
                        {
                            "train/loss": loss,
                            "train/lr": lr,
                            "train/grad_norm": grad_norm,
                            "train/step_seconds": step_times[-1],
                        },
                        done,
                    )
                if (
                    validator is not None
                    and cfg.validation_every
                    and done % cfg.validation_every == 0
                    and done < end_step
                    and not stopping
                ):
                    # Validation changes no training state, so (single process) Ctrl-C may cut it short.
                    try:
                        with stop.interruptible() if dist_info.world == 1 else contextlib.nullcontext():
                            val_metrics = validator.run(transformer, done, reporter, output_dir)
                    except _FirstInterrupt:
                        stopping = True
                if done % cfg.checkpoint_every == 0 or done == end_step or stopping:
                    last_checkpoint = (done, write_checkpoint(done))
                if stopping:
                    raise TrainingInterrupted(*last_checkpoint, stop.signum)

        steps_done = max(end_step, start_step)
        probe_end = probe()
        if stop_after_steps is not None and steps_done < total_steps:
            return TrainResult(None, losses, steps_done, probe_start, probe_end)

        if validator is not None:
            val_metrics = validator.run(transformer, steps_done, reporter, output_dir)
        metrics: dict[str, Any] = {
            "steps": steps_done,
            "final_loss": float(sum(losses[-10:]) / len(losses[-10:])) if losses else None,
            "probe_loss_start": probe_start,
            "probe_loss_end": probe_end,
            "median_step_seconds": float(sorted(step_times)[len(step_times) // 2]) if step_times else None,
            "train_clips": len(train_data),
            "world_size": dist_info.world,
            **val_metrics,
        }
        metrics = json_safe(json.loads(json.dumps(metrics, default=float)))
        adapter_dir, registered = None, (None, False)
        if dist_info.main:
            adapter_dir = write_output(cfg, transformer, fingerprint, split, metrics, started_at, output_dir)
            if cfg.registry:
                registered = ensure_registered(cfg.registry, adapter_dir, cfg.adapter_name or output_dir.name)
    except KeyboardInterrupt as exc:
        # An abort (second Ctrl-C) or a Ctrl-C after the steps: still say which checkpoint a re-run uses.
        if isinstance(exc, TrainingInterrupted) or last_checkpoint is None:
            raise
        raise TrainingInterrupted(last_checkpoint[0], last_checkpoint[1], stop.signum) from exc
    finally:
        if reporter is not None:
            reporter.close()
    if dist_info.world > 1:
        torch.distributed.barrier()
    return TrainResult(adapter_dir, losses, steps_done, probe_start, probe_end, metrics, False, *registered)


def _finished_run(output_dir: Path, info: dict[str, Any], identity: dict[str, Any]) -> TrainResult | None:
    """The result of a run already trained to its last step whose adapter folder is in place, else None."""
    found = finished_adapter(output_dir, info, identity)
    if found is None:
        return None
    folder, metrics = found

    def number(name: str) -> float:
        value = metrics.get(name)
        return float(value) if isinstance(value, (int, float)) else math.nan

    step, probe_start, probe_end = int(info["step"]), number("probe_loss_start"), number("probe_loss_end")
    losses = recorded_losses(info)
    return TrainResult(folder, losses, step, probe_start, probe_end, metrics, already_complete=True)


@dataclass
class _Batch:
    inputs: Any
    text: torch.Tensor


def _make_batch(
    cfg: TrainConfig,
    order: SampleOrder,
    data: CachedLatents,
    step: int,
    positions: list[int],
    device: torch.device,
    dtype: torch.dtype,
) -> _Batch:
    cleans, noises, sigmas, conds, texts = [], [], [], [], []
    for pos in positions:
        item = data[order.clip_index(step, pos)]
        gen = sample_generator(cfg.seed, order.sample_key(step, pos))
        draw = draw_sample(
            gen,
            tuple(item["latents"].shape),
            mean=cfg.logit_normal_mean,
            std=cfg.logit_normal_std,
            shift=cfg.sigma_shift,
            cond_frame_probs=cfg.cond_frame_probs,
            prompt_dropout=cfg.prompt_dropout,
        )
        cleans.append(item["latents"])
        noises.append(draw.noise)
        sigmas.append(draw.sigma)
        conds.append(draw.num_cond_frames)
        texts.append(data.empty_text if draw.drop_prompt else item["text"])
    inputs = build_inputs(
        torch.stack(cleans).to(device),
        torch.stack(noises).to(device),
        torch.tensor(sigmas, device=device),
        torch.tensor(conds),
        cfg.cond_timestep,
        dtype,
    )
    return _Batch(inputs, torch.stack(texts).to(device, dtype))
