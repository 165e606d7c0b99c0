"""Context parallelism for Cosmos Predict 2.5's transformer: one prediction's tokens over several GPUs.

At 704x1280x93 one forward of the 2B transformer attends over 84,480 tokens and attention is most
of a prediction's time. Context parallelism splits those tokens across ranks: every rank holds the
whole model, runs its slice of the tokens through every block, and only self-attention talks to the
other ranks (Ulysses: two all-to-alls per attention that trade tokens for heads; ring: key/value
slices passed around). diffusers 0.42 does this for Wan and LTX through a ``_cp_plan`` on the model
and processors that pass ``_parallel_config`` to ``dispatch_attention_fn``; its Cosmos transformer
has neither, so this module supplies both in the same shape (:func:`cosmos_cp_plan`,
:class:`CosmosContextParallelSelfAttnProcessor`) and applies them with diffusers' own hooks.

Why each plan entry is where it is (all token-wise tensors are sliced along the same
``t*h*w`` token axis, in the same contiguous chunks):

- ``rope`` and ``learnable_pos_embed``: sliced on their outputs, which every block reuses;
- ``transformer_blocks.0``: the patchified tokens, once; later blocks receive the slice;
- ``transformer_blocks.*`` and ``norm_out``: the timestep embeddings, which are per token when the
  timestep is per frame (conditioning frames, shape ``[B, 1, T, 1, 1]``) and are built inside the
  model's ``forward``, so only the modules that take them can slice them; a per-sample timestep
  (shape ``[B]``) gives ``[B, C]`` embeddings that are left whole (diffusers logs once that it
  skipped them, as it does for Wan);
- ``proj_out``: gathered back before the unpatchify, so every rank returns the whole output.

Cross-attention keeps the stock processors: each rank's query slice attends to all text tokens,
which every rank holds, so no communication is needed and none may be added.

Check it against the plain model (every rank prints the largest difference)::

    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        -m cosmos_ros.model.context_parallel /path/to/Cosmos-Predict2.5-2B --ulysses 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import torch

#: Name of the hook that refuses token counts the ranks cannot share evenly.
_TOKEN_CHECK_HOOK = "cosmos_ros_cp_token_check"
#: Attribute on the transformer holding what :func:`disable_context_parallel` must undo.
_STATE_ATTR = "_cosmos_ros_context_parallel"


class CosmosContextParallelSelfAttnProcessor:
    """``CosmosAttnProcessor2_0`` for self-attention (``attn1``) that hands diffusers its parallel config.

    The stock processor calls ``dispatch_attention_fn`` without ``parallel_config``, so on token
    slices it would attend only within each rank's slice. Same math otherwise (its GQA
    ``repeat_interleave`` is by 1 for Cosmos and is left out).
    """

    #: Set by ``set_attention_backend``; None: diffusers' active backend (``native`` unless changed).
    _attention_backend = None
    #: Set by :func:`enable_context_parallel`; None: plain attention over the tokens given.
    _parallel_config = None

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        from diffusers.models.attention_dispatch import dispatch_attention_fn
        from diffusers.models.embeddings import apply_rotary_emb

        if encoder_hidden_states is not None:
            raise ValueError(
                "CosmosContextParallelSelfAttnProcessor got encoder_hidden_states; it serves self-attention "
                "(attn1) only, cross-attention keeps the stock processor"
            )
        query, key, value = (
            proj(hidden_states).unflatten(2, (attn.heads, -1)).transpose(1, 2)
            for proj in (attn.to_q, attn.to_k, attn.to_v)
        )
        query = attn.norm_q(query)
        key = attn.norm_k(key)
        if image_rotary_emb is not None:
            query = apply_rotary_emb(query, image_rotary_emb, use_real=True, use_real_unbind_dim=-2)
            key = apply_rotary_emb(key, image_rotary_emb, use_real=True, use_real_unbind_dim=-2)
        out = dispatch_attention_fn(
            query.transpose(1, 2),
            key.transpose(1, 2),
            value.transpose(1, 2),
            attn_mask=attention_mask,
            dropout_p=0.0,
            is_causal=False,
            backend=self._attention_backend,
            parallel_config=self._parallel_config,
        )
        out = out.flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


def cosmos_cp_plan(transformer: Any) -> dict[str, Any]:
    """The context-parallel plan of ``transformer`` (a ``CosmosTransformer3DModel``), Wan/LTX style.

    A function, not a constant, because ``learnable_pos_embed`` exists only when the config's
    ``extra_pos_embed_type`` is ``"learnable"``, and diffusers refuses plan entries for absent modules.
    """
    from diffusers.models._modeling_parallel import ContextParallelInput, ContextParallelOutput

    per_token = ContextParallelInput(split_dim=1, expected_dims=3, split_output=False)
    rope_out = ContextParallelInput(split_dim=0, expected_dims=2, split_output=True)  # cos, sin: [S, D]
    plan: dict[str, Any] = {
        "rope": {0: rope_out, 1: rope_out},
        "transformer_blocks.0": {"hidden_states": per_token},
        "transformer_blocks.*": {"embedded_timestep": per_token, "temb": per_token},
        "norm_out": {"embedded_timestep": per_token, "temb": per_token},
        "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3),
    }
    if transformer.learnable_pos_embed is not None:
        plan["learnable_pos_embed"] = {
            0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)
        }
    return plan


def token_count(transformer: Any, latent_shape: Sequence[int]) -> int:
    """Tokens the transformer makes of latents of ``latent_shape`` (``[B, C, T, H, W]``)."""
    p_t, p_h, p_w = transformer.config.patch_size
    _, _, t, h, w = latent_shape
    return (t // p_t) * (h // p_h) * (w // p_w)


def _token_check_hook(degree: int) -> Any:
    """A diffusers hook on the transformer that refuses, in one line, inputs the ranks cannot share evenly.

    Without it diffusers fails deep inside the first block with a bare assertion.
    """
    from diffusers.hooks import ModelHook

    class TokenCheck(ModelHook):
        def pre_forward(self, module: Any, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
            if kwargs.get("block_controlnet_hidden_states") is not None or (
                len(args) > 3 and args[3] is not None
            ):
                raise ValueError(
                    "block_controlnet_hidden_states is not supported with context parallelism; "
                    "run ControlNet (Cosmos Transfer) on one GPU"
                )
            latents = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            shape = tuple(latents.shape)
            tokens = token_count(module, shape)
            if tokens % degree:
                p_t, p_h, p_w = module.config.patch_size
                _, _, t, h, w = shape
                raise ValueError(
                    f"context parallelism over {degree} ranks needs a token count divisible by {degree}: "
                    f"latents of shape {shape} give {t // p_t}x{h // p_h}x{w // p_w} = {tokens} tokens "
                    f"(patch {(p_t, p_h, p_w)}); choose frames, height or width to make it divisible"
                )
            return args, kwargs

    return TokenCheck()


def enable_context_parallel(transformer: Any, config: Any) -> Any:
    """Split ``transformer``'s tokens over the ranks of ``config`` (a diffusers ``ContextParallelConfig``).

    Call it on every rank, after ``torch.distributed.init_process_group`` (torchrun) and after any
    ``set_attention_backend``, with the same input on every rank at each forward; each rank then
    returns the whole output. ``ring_degree * ulysses_degree`` must equal the world size unless
    ``config.mesh`` is given; Ulysses also needs the head count divisible by ``ulysses_degree``.
    Ring attention needs a backend that returns log-sum-exp (``flash``, ``_native_flash``,
    ``_native_cudnn``: CUDA only); the CPU ``native`` backend supports Ulysses only.

    This mirrors ``ModelMixin.enable_parallelism`` (its backend check, processor wiring and
    ``apply_context_parallel`` hooks) rather than calling it because that picks the device as
    ``rank % torch.accelerator.device_count()``, a division by zero on a CPU host, and would not
    let the CPU tests run the same code path the GPUs do. Returns the ``ParallelConfig`` in use.
    """
    import torch.distributed as dist
    from diffusers import CosmosTransformer3DModel
    from diffusers.hooks import HookRegistry
    from diffusers.hooks.context_parallel import apply_context_parallel
    from diffusers.models._modeling_parallel import ContextParallelConfig, ParallelConfig
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    if not isinstance(transformer, CosmosTransformer3DModel):
        raise TypeError(
            f"enable_context_parallel needs a CosmosTransformer3DModel, got {type(transformer).__name__}"
        )
    if not isinstance(config, ContextParallelConfig):
        raise TypeError(
            f"enable_context_parallel needs a diffusers ContextParallelConfig, got {type(config).__name__}"
        )
    if getattr(transformer, "_parallel_config", None) is not None:
        raise RuntimeError(
            "this transformer already has a parallel config; call disable_context_parallel first"
        )
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "context parallelism needs torch.distributed initialised on every rank (launch with torchrun and "
            "call torch.distributed.init_process_group first)"
        )
    if config.ulysses_anything or config.ring_anything:
        raise ValueError(
            "ulysses_anything/ring_anything are not supported by the Cosmos plan; it splits tokens evenly "
            "(use ulysses_degree or ring_degree alone)"
        )
    degree = config.ring_degree * config.ulysses_degree
    world = dist.get_world_size()
    if config.mesh is None and degree != world:
        raise ValueError(
            f"ContextParallelConfig(ring_degree={config.ring_degree}, "
            f"ulysses_degree={config.ulysses_degree}) spans {degree} ranks but the process group has "
            f"{world}; use degrees whose product is {world}"
        )
    heads = transformer.config.num_attention_heads
    if heads % config.ulysses_degree:
        raise ValueError(
            f"ulysses_degree={config.ulysses_degree} must divide the transformer's {heads} attention heads"
        )
    blocks = list(transformer.transformer_blocks)
    backend = getattr(blocks[0].attn1.processor, "_attention_backend", None)
    backend = AttentionBackendName(backend) if backend else _AttentionBackendRegistry.get_active_backend()[0]
    if not _AttentionBackendRegistry._is_context_parallel_available(backend):
        supported = sorted(_AttentionBackendRegistry._supports_context_parallel)
        raise ValueError(
            f"attention backend {backend.value!r} has no context parallelism; use one of {supported}"
        )

    if torch.cuda.is_available():
        device_type, device = "cuda", torch.device("cuda", torch.cuda.current_device())
    else:
        device_type, device = "cpu", torch.device("cpu")
    mesh = config.mesh or dist.device_mesh.init_device_mesh(
        device_type, config.mesh_shape, mesh_dim_names=config.mesh_dim_names
    )
    parallel = ParallelConfig(context_parallel_config=config)
    parallel.setup(dist.get_rank(), world, device, mesh=mesh)

    originals = [block.attn1.processor for block in blocks]
    for block, old in zip(blocks, originals, strict=True):
        processor = CosmosContextParallelSelfAttnProcessor()
        processor._attention_backend = getattr(old, "_attention_backend", None)
        processor._parallel_config = parallel
        block.attn1.set_processor(processor)
    plan = cosmos_cp_plan(transformer)
    apply_context_parallel(transformer, config, plan)
    HookRegistry.check_if_exists_or_initialize(transformer).register_hook(
        _token_check_hook(degree), _TOKEN_CHECK_HOOK
    )
    transformer._parallel_config = parallel
    setattr(transformer, _STATE_ATTR, (plan, originals))
    return parallel


def disable_context_parallel(transformer: Any) -> None:
    """Undo :func:`enable_context_parallel`: hooks removed, stock self-attention processors back."""
    from diffusers.hooks import HookRegistry
    from diffusers.hooks.context_parallel import remove_context_parallel

    state = getattr(transformer, _STATE_ATTR, None)
    if state is None:
        raise RuntimeError("context parallelism is not enabled on this transformer (enable_context_parallel)")
    plan, originals = state
    remove_context_parallel(transformer, plan)
    HookRegistry.check_if_exists_or_initialize(transformer).remove_hook(_TOKEN_CHECK_HOOK)
    for block, processor in zip(transformer.transformer_blocks, originals, strict=True):
        block.attn1.set_processor(processor)
    transformer._parallel_config = None
    delattr(transformer, _STATE_ATTR)


# ------------------------------------------------------------------------------------------------ check
def sample_inputs(
    transformer: Any, latent_frames: int, height: int, width: int, *, seed: int = 0, per_frame_timestep: bool
) -> dict[str, Any]:
    """Random transformer inputs as the Cosmos 2.5 pipeline builds them (latent sizes; batch 1).

    ``per_frame_timestep``: the image/video-to-world form (``[B, 1, T, 1, 1]``, first frame
    conditioned at t=0) instead of one timestep per sample (text-to-world).
    """
    cfg = transformer.config
    param = next(transformer.parameters())
    gen = torch.Generator().manual_seed(seed)
    shape = (1, cfg.out_channels, latent_frames, height, width)
    text_channels = cfg.crossattn_proj_in_channels if cfg.use_crossattn_projection else cfg.text_embed_dim
    cond_mask = torch.zeros(1, 1, latent_frames, height, width)
    cond_mask[:, :, 0] = 1.0
    if per_frame_timestep:
        timestep = torch.full((1, 1, latent_frames, 1, 1), 0.7)
        timestep[:, :, 0] = 0.0
    else:
        timestep = torch.tensor([0.7])
    inputs = {
        "hidden_states": torch.randn(shape, generator=gen),
        "condition_mask": cond_mask if cfg.in_channels > cfg.out_channels else None,
        "timestep": timestep,
        "encoder_hidden_states": torch.randn(1, 16, text_channels, generator=gen),
        "padding_mask": torch.zeros(1, 1, height, width),
    }
    return {k: None if v is None else v.to(param.device, param.dtype) for k, v in inputs.items()}


def compare_with_plain(
    transformer: Any, config: Any, latent_frames: int, height: int, width: int, *, seed: int = 0
) -> dict[str, Any]:
    """Largest |context-parallel - plain| output difference, for both timestep forms, on this rank.

    Runs the plain model first, then enables context parallelism (left enabled) and runs again on
    the same inputs; call on every rank.
    """
    cases = {
        form: sample_inputs(
            transformer, latent_frames, height, width, seed=seed, per_frame_timestep=per_frame
        )
        for form, per_frame in (("per_sample_timestep", False), ("per_frame_timestep", True))
    }
    with torch.no_grad():
        plain = {form: transformer(**inputs, return_dict=False)[0] for form, inputs in cases.items()}
        enable_context_parallel(transformer, config)
        parallel = {form: transformer(**inputs, return_dict=False)[0] for form, inputs in cases.items()}
    shape = tuple(cases["per_sample_timestep"]["hidden_states"].shape)
    report: dict[str, Any] = {"latent_shape": list(shape), "tokens": token_count(transformer, shape)}
    for form in cases:
        if parallel[form].shape != plain[form].shape:
            raise RuntimeError(
                f"{form}: output shape {tuple(parallel[form].shape)} != {tuple(plain[form].shape)}"
            )
        report[form] = {
            "max_abs_diff": float((parallel[form].float() - plain[form].float()).abs().max()),
            "max_abs_output": float(plain[form].float().abs().max()),
        }
    return report


def _load_transformer(path: str, dtype: torch.dtype) -> Any:
    """The transformer of a pipeline folder (``PATH/transformer``) or of a transformer folder itself."""
    from pathlib import Path

    from diffusers import CosmosTransformer3DModel

    folder = Path(path)
    if (folder / "transformer" / "config.json").is_file():
        folder = folder / "transformer"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no transformer config.json in {path} or {path}/transformer")
    return CosmosTransformer3DModel.from_pretrained(folder, torch_dtype=dtype).eval()


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the context-parallel transformer with the plain one, under torchrun; 1 if it differs."""
    import torch.distributed as dist
    from diffusers.models._modeling_parallel import ContextParallelConfig

    parser = argparse.ArgumentParser(
        prog="python -m torch.distributed.run --nproc_per_node=N -m cosmos_ros.model.context_parallel",
        description="Check that Cosmos context parallelism gives the plain transformer's output.",
    )
    parser.add_argument("model", help="pipeline folder (with transformer/) or transformer folder")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--ulysses", type=int, metavar="N", help="Ulysses degree (the world size)")
    mode.add_argument("--ring", type=int, metavar="N", help="ring degree (the world size)")
    parser.add_argument("--frames", type=int, default=3, help="latent frames (default 3)")
    parser.add_argument("--height", type=int, default=8, help="latent height (default 8)")
    parser.add_argument("--width", type=int, default=12, help="latent width (default 12)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="default float32")
    parser.add_argument("--backend", default=None, help="attention backend (default: diffusers' active one)")
    parser.add_argument("--atol", type=float, default=1e-5, help="largest difference accepted (default 1e-5)")
    parser.add_argument("--json", default=None, help="rank 0 also writes the report here (default: none)")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    try:
        transformer = _load_transformer(args.model, getattr(torch, args.dtype))
        if cuda:
            transformer.to("cuda")
        if args.backend:
            transformer.set_attention_backend(args.backend)
        config = ContextParallelConfig(ulysses_degree=args.ulysses, ring_degree=args.ring)
        report = compare_with_plain(transformer, config, args.frames, args.height, args.width)
        report.update(
            mode="ulysses" if args.ulysses else "ring",
            degree=args.ulysses or args.ring,
            world_size=dist.get_world_size(),
            device=torch.cuda.get_device_name() if cuda else "cpu",
            dtype=args.dtype,
        )
        worst = max(report[f]["max_abs_diff"] for f in ("per_sample_timestep", "per_frame_timestep"))
        report["ok"] = worst <= args.atol
        print(json.dumps({"rank": dist.get_rank(), **report}, sort_keys=True), flush=True)
        if args.json and dist.get_rank() == 0:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=2, sort_keys=True)
        return 0 if report["ok"] else 1
    except (ValueError, RuntimeError, TypeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
