"""The model runtime: a frozen Cosmos Predict 2.5 base, hot-swappable adapters, ``predict``.

One :class:`CosmosRuntime` holds one base model; the base weights are never reloaded and
"no adapter" reproduces the base output exactly. Prompts are encoded once (see prompt_cache.py);
the text encoder is loaded lazily, only when a prompt is missing from the cache.

Two engines run the same math (tests/test_model_fast_sampler.py checks them against each other):

``fast`` (default)  fast_sampler.py's loop: adapters merged into the weights in place
                    (merged_adapters.py: no per-forward LoRA cost, switches in milliseconds,
                    compiled transformers stay valid), optional regional ``torch.compile`` with a
                    persistent cache, and the opt-in ``approximate=True`` mode;
``stock``           the stock pipeline's ``__call__`` with cached ``prompt_embeds`` and adapters
                    attached through diffusers/peft (``load_lora_adapter``, ``set_adapters``).

Conditioning frames of any size are fitted to the model resolution (``fit="crop"``: resize to
cover then centre-crop; ``"letterbox"``: resize to fit then pad black; see media/frame_fit.py).
One frame => image-to-world; several => video-to-world conditioned on the last 5 frames
(2 latent frames), or on the last frame when fewer than 5 are given.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cosmos_ros.media.frame_fit import fit_frame
from cosmos_ros.model import fast_sampler, loading
from cosmos_ros.model.adapters import (
    AdapterIncompatible,
    StagedAdapter,
    check_compatibility,
    read_adapter,
)
from cosmos_ros.model.fingerprint import component_fingerprint, model_fingerprint
from cosmos_ros.model.merged_adapters import MergedAdapterSwitcher
from cosmos_ros.model.presets import Preset, presets_for, read_model_hint, resolve_preset
from cosmos_ros.model.prompt_cache import PromptEmbeddingCache, warn_if_truncated
from cosmos_ros.model.safety import make_safety_checker
from cosmos_ros.model.settings import (
    SizeLimits,
    check_settings,
    chosen_name,
    conditioning_frames,
    model_limits,
    request_settings,
)
from cosmos_ros.progress import ProgressCallback, Stopwatch

log = logging.getLogger(__name__)

__all__ = [
    "AdapterIncompatible",
    "CosmosRuntime",
    "PredictionCancelled",
    "PredictionNotFinite",
    "PredictionOutOfMemory",
    "PredictionResult",
    "check_settings",
    "chosen_name",
]

MAX_SEQUENCE_LENGTH = 512
ENGINES: tuple[str, ...] = ("fast", "stock")
_KEEP = object()  # "leave the active adapter as it is"


class PredictionCancelled(Exception):
    """``predict`` stopped because its ``cancel`` event was set (between denoising steps)."""


class PredictionOutOfMemory(RuntimeError):
    """The accelerator ran out of memory; the runtime has released what it could and stays usable."""


class PredictionNotFinite(RuntimeError):
    """The prediction came out NaN or infinite: reported instead of returned as an all-black video."""


def _settings(preset: Preset, num_frames, steps, guidance, height, width, fit, seed,
              limits: SizeLimits | None = None) -> dict[str, Any]:  # fmt: skip
    """settings.request_settings under its older name (the evaluation imports it from here)."""
    return request_settings(preset, num_frames, steps, guidance, height, width, fit, seed, limits=limits)


@dataclass
class PredictionResult:
    """A predicted video: uint8 [T, H, W, 3] RGB frames, their fps, and what produced them."""

    frames: np.ndarray
    fps: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path`` (H.264 mp4) plus ``<stem>_first.png`` and ``<stem>_last.png``, each atomically."""
        from cosmos_ros.media.video import write_png, write_video

        path = Path(path)
        video = write_video(path, self.frames, self.fps)  # first: a failed video leaves no stray stills
        write_png(path.with_name(f"{path.stem}_first.png"), self.frames[0])
        write_png(path.with_name(f"{path.stem}_last.png"), self.frames[-1])
        return video


class CosmosRuntime:
    """A loaded base model with adapters; create it with :meth:`load`."""

    def __init__(
        self,
        layout: loading.ModelLayout,
        pipe: Any,
        *,
        device: str,
        dtype: Any,
        fingerprint: str,
        safety: str,
        prompt_cache: PromptEmbeddingCache,
        presets: dict[str, Preset],
        cpu_offload: bool,
        engine: str = "fast",
    ) -> None:
        self.layout = layout
        self.pipe = pipe
        self.device = device
        self.dtype = dtype
        self.fingerprint = fingerprint
        self.safety = safety
        self.prompt_cache = prompt_cache
        self.presets = presets
        self.cpu_offload = cpu_offload
        self.engine = engine
        self.limits = model_limits(layout.model_dir)
        self._switcher = MergedAdapterSwitcher(pipe.transformer) if engine == "fast" else None
        self._staged: dict[str, StagedAdapter] = {}
        self._adapter_ids: dict[str, str] = {}
        self._active: str | None = None
        self._lock = threading.RLock()
        self.stats = {"text_encoder_calls": 0, "text_encoder_loads": 0}

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike[str],
        device: str = "cpu",
        dtype: Any = "bfloat16",
        safety_checker: str = "auto",
        prompt_cache_dir: str | os.PathLike[str] | None = None,
        cpu_offload: bool = False,
        engine: str = "fast",
        compile: bool = False,
        compile_cache_dir: str | os.PathLike[str] | None = None,
        attention_backend: str | None = None,
        context_parallel: Any = None,
    ) -> CosmosRuntime:
        """Load a local diffusers directory strictly offline (no hub access, safetensors only).

        Fails before reading weights when the directory is missing, incomplete, holds a component
        of the wrong class or a different model family. ``cpu_offload`` keeps components on the
        CPU and moves each to ``device`` only while it runs (diffusers model CPU offload).
        ``engine``: ``fast`` or ``stock`` (module docstring). ``compile`` compiles each transformer
        block (fast engine; kernels cached under ``compile_cache_dir``, default a
        ``TORCHINDUCTOR_CACHE_DIR`` the user set, else ``~/.cache/cosmos_ros/torch_compile``).
        ``attention_backend``: a diffusers attention backend name such as ``_native_cudnn``
        (None: PyTorch's own choice). ``context_parallel``: a diffusers ``ContextParallelConfig``
        that splits each prediction's tokens over the ranks of the initialised torch.distributed
        group (every rank loads the same model and makes the same calls; README "Scaling out");
        None (default): this device alone.
        """
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from diffusers import Cosmos2_5_PredictBasePipeline

        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; accepted: {', '.join(ENGINES)}")
        if compile and engine != "fast":
            raise ValueError(
                "compile=True needs engine='fast' (peft layers would be recompiled on every swap)"
            )
        if context_parallel is not None and (compile or cpu_offload):
            raise ValueError(
                "context_parallel needs compile=False and cpu_offload=False (not tested together yet)"
            )
        layout = loading.validate_model_dir(model_dir)
        if (why := loading.missing_bytecode()) is not None:
            log.warning(
                "Python bytecode is not cached (%s): every start compiles torch, transformers and "
                "diffusers from source again (seconds). Compile it once (python -m compileall over "
                "site-packages) or unset PYTHONDONTWRITEBYTECODE and set PYTHONPYCACHEPREFIX",
                why,
            )
        torch_dtype = loading.torch_dtype(dtype)
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} requested but CUDA is not available")
        checker, safety = make_safety_checker(safety_checker)
        fingerprint = model_fingerprint(layout.model_dir)
        encoder_fp = component_fingerprint(layout.model_dir, ["text_encoder", "tokenizer"])
        place = None if cpu_offload else device  # offloaded components start on the CPU
        pipe = Cosmos2_5_PredictBasePipeline(
            text_encoder=None,  # loaded lazily, only for prompts missing from the cache
            tokenizer=None,  # loaded with the text encoder: unused while prompts come from the cache
            transformer=loading.load_transformer(layout, torch_dtype, place),
            vae=loading.load_vae(layout, torch_dtype, place),
            scheduler=loading.load_scheduler(layout),
            safety_checker=checker,
        )
        pipe.set_progress_bar_config(disable=True)
        if cpu_offload:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        if attention_backend:
            pipe.transformer.set_attention_backend(attention_backend)
        if context_parallel is not None:
            from .context_parallel import enable_context_parallel

            enable_context_parallel(pipe.transformer, context_parallel)
        if compile:
            cache = fast_sampler.compile_transformer(pipe.transformer, cache_dir=compile_cache_dir)
            log.info("compiled kernels are cached in %s", cache)
        runtime = cls(
            layout,
            pipe,
            device=str(device),
            dtype=torch_dtype,
            fingerprint=fingerprint,
            safety=safety,
            prompt_cache=PromptEmbeddingCache(encoder_fp, prompt_cache_dir),
            presets=presets_for(read_model_hint(layout.model_dir)),
            cpu_offload=cpu_offload,
            engine=engine,
        )
        log.info("loaded %s (%s, %s, safety: %s)", layout.model_dir, device, torch_dtype, safety)
        return runtime

    def close(self) -> None:
        """Drop every model and free accelerator memory; the runtime is unusable afterwards."""
        with self._lock:
            self.pipe = None
            self._staged.clear()
            gc.collect()
            _empty_cuda_cache()

    def warmup(self, preset: str = "full") -> float:
        """Run one denoising step at ``preset``'s size; returns its seconds.

        With ``compile=True`` this is when compilation happens (or the on-disk compile cache is
        read), so the first real request does not pay for it. Needs no prompt and never loads the
        text encoder (the step runs on zero embeddings).
        """
        import torch

        chosen = resolve_preset(preset, self.presets)
        if self.engine != "fast":
            return 0.0
        config = self.pipe.transformer.config
        channels = (
            config.crossattn_proj_in_channels if config.use_crossattn_projection else config.text_embed_dim
        )
        started = time.monotonic()
        with self._lock, torch.no_grad():
            device = self.pipe._execution_device
            embeds = torch.zeros(1, MAX_SEQUENCE_LENGTH, channels, device=device, dtype=self.dtype)
            frame = np.zeros((1, chosen.height, chosen.width, 3), dtype=np.uint8)
            video, frames_in = fast_sampler.conditioning_video(frame, 1)
            inputs = fast_sampler.prepare_inputs(
                self.pipe, video, frames_in, num_frames=chosen.num_frames, height=chosen.height,
                width=chosen.width, prompt_embeds=embeds, negative_prompt_embeds=None,
                generator=torch.Generator("cpu").manual_seed(0),
            )  # fmt: skip
            fast_sampler.denoise(self.pipe, inputs, steps=1, guidance=1.0)
        return time.monotonic() - started

    # --------------------------------------------------------------- text encoder
    def _ensure_text_encoder(self) -> Any:
        if self.pipe.tokenizer is None:
            self.pipe.register_modules(tokenizer=loading.load_tokenizer(self.layout))
        if self.pipe.text_encoder is None:
            encoder = loading.load_text_encoder(self.layout, self.dtype)
            self.stats["text_encoder_loads"] += 1
            self.pipe.register_modules(text_encoder=encoder)
            if not self.cpu_offload:
                encoder.to(self.device)
        return self.pipe.text_encoder

    def release_text_encoder(self) -> None:
        """Free the text encoder (cached prompts keep working; a new prompt loads it again)."""
        with self._lock:
            if self.pipe.text_encoder is not None:
                self.pipe.register_modules(text_encoder=None)
                gc.collect()
                _empty_cuda_cache()

    def encode_prompt(self, prompt: str) -> Any:
        """Prompt embeddings [1, L, C], from the cache or by running the text encoder once."""
        cached = self.prompt_cache.get(prompt, MAX_SEQUENCE_LENGTH)
        if cached is not None:
            return cached
        import torch

        encoder = self._ensure_text_encoder()
        warn_if_truncated(self.pipe.tokenizer, prompt, MAX_SEQUENCE_LENGTH)
        with torch.no_grad():
            embeds, _ = self.pipe.encode_prompt(
                prompt=prompt,
                do_classifier_free_guidance=False,
                max_sequence_length=MAX_SEQUENCE_LENGTH,
                device=encoder.device if not self.cpu_offload else self.pipe._execution_device,
                dtype=self.dtype,
            )
        self.stats["text_encoder_calls"] += 1
        self.prompt_cache.put(prompt, MAX_SEQUENCE_LENGTH, embeds)
        return self.prompt_cache.get(prompt, MAX_SEQUENCE_LENGTH)

    # ------------------------------------------------------------------ adapters
    @property
    def loaded_adapters(self) -> list[str]:
        return sorted(self._staged)

    @property
    def active_adapter(self) -> str | None:
        return self._active

    def load_adapter(
        self, name: str, folder_or_file: str | os.PathLike[str], adapter_id: str | None = None
    ) -> StagedAdapter:
        """Check and attach a LoRA/DoRA adapter under ``name``; the active adapter stays as it was.

        Raises :class:`AdapterIncompatible` (a ``ValueError``) before touching the model when the
        file is corrupt, not safetensors, made for another base, or targets missing/other-sized layers.
        """
        if not name or not isinstance(name, str):
            raise ValueError(f"adapter name must be a non-empty string, got {name!r}")
        with self._lock:
            if name in self._staged:
                raise ValueError(
                    f"an adapter named {name!r} is already loaded; unload it first or pick another name"
                )
            staged = self.check_adapter(folder_or_file)
            self._attach(name, staged)
            self._staged[name] = staged
            self._adapter_ids[name] = adapter_id or staged.adapter_id
            self._apply_active()
            log.info(
                "loaded adapter %r (%s r%d) from %s", name, staged.adapter_type, staged.rank, staged.source
            )
            return staged

    def check_adapter(self, folder_or_file: str | os.PathLike[str]) -> StagedAdapter:
        """Read an adapter and check that it fits this base, without attaching it.

        The check :meth:`load_adapter` runs first; callers that must refuse a misfit early (the
        generation node's ``adapter`` parameter) call it on its own. Raises :class:`AdapterIncompatible`.
        """
        staged = read_adapter(folder_or_file)
        check_compatibility(staged, self.pipe.transformer, self.fingerprint)
        return staged

    def _attach(self, name: str, staged: StagedAdapter, hotswap: bool = False) -> None:
        if self._switcher is not None:
            self._switcher.stage(name, staged)
            return
        state_dict = {k: v.clone() for k, v in staged.state_dict.items()}
        self.pipe.transformer.load_lora_adapter(
            state_dict,
            prefix=None,
            adapter_name=name,
            metadata=staged.lora_config,
            hotswap=hotswap,
            _pipeline=self.pipe,
        )

    def set_active_adapter(self, name: str | None) -> None:
        """Switch the adapter used by ``predict`` (``None``: the base); no base reload."""
        with self._lock:
            if name is not None and name not in self._staged:
                loaded = ", ".join(self.loaded_adapters) or "none"
                raise ValueError(f"adapter {name!r} is not loaded; loaded adapters: {loaded}")
            self._active = name
            self._apply_active()

    def unload_adapter(self, name: str) -> None:
        """Detach an adapter and free its weights."""
        with self._lock:
            if name not in self._staged:
                raise ValueError(
                    f"adapter {name!r} is not loaded; loaded adapters: {', '.join(self.loaded_adapters)}"
                )
            if self._switcher is not None:
                self._switcher.unstage(name)
            else:
                self.pipe.transformer.delete_adapters([name])
            del self._staged[name]
            del self._adapter_ids[name]
            if self._active == name:
                self._active = None
            self._apply_active()

    def _apply_active(self) -> None:
        transformer = self.pipe.transformer
        if self._switcher is not None:
            self._switcher.activate(self._active)
            return
        if not self._staged:
            return
        if self._active is None:
            transformer.disable_lora()
        else:
            transformer.enable_lora()
            transformer.set_adapters([self._active], weights=[1.0])

    # ------------------------------------------------------------------ predict
    def predict(
        self,
        frames: np.ndarray | list[np.ndarray],
        prompt: str,
        *,
        adapter: Any = _KEEP,
        num_frames: int | None = None,
        preset: str = "full",
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        height: int | None = None,
        width: int | None = None,
        fit: str = "crop",
        negative_prompt: str | None = None,
        on_step: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        approximate: bool = False,
    ) -> PredictionResult:
        """Predict a video from conditioning ``frames`` and ``prompt``; deterministic for ``seed``.

        ``adapter``: a loaded adapter name, ``None`` for the base, omitted to keep the active one.
        Explicit ``num_frames``/``steps``/``guidance``/``height``/``width`` override the preset.
        ``approximate=True`` (fast engine) trades exactness for about 2x fewer transformer
        forwards (fast_sampler.APPROX_FAST); the metadata then says so. Settings outside what the
        model covers (non-finite guidance, more frames than its position embeddings) are a
        ``ValueError``; a prediction that comes out NaN or infinite is :class:`PredictionNotFinite`.
        """
        import torch

        started = time.monotonic()
        chosen = resolve_preset(preset, self.presets)
        settings = _settings(chosen, num_frames, steps, guidance, height, width, fit, seed, self.limits)
        if approximate and self.engine != "fast":
            raise ValueError(
                "approximate=True needs the fast engine (CosmosRuntime.load(..., engine='fast'))"
            )
        settings["approximate"] = fast_sampler.APPROX_FAST.to_dict() if approximate else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError("prompt must be a non-empty string describing what should happen")
        conditioning = conditioning_frames(frames)
        if cancel is not None and cancel.is_set():
            raise PredictionCancelled("cancelled before start")

        with self._lock:
            if self.pipe is None:
                raise RuntimeError("this runtime was closed")
            if adapter is not _KEEP:
                self.set_active_adapter(adapter)
            if not self.pipe.safety_checker.check_text_safety(prompt):
                raise ValueError("the safety checker refused the prompt")
            try:
                return self._predict_locked(
                    conditioning, prompt, negative_prompt, settings, chosen, on_step, cancel, started, torch
                )
            except torch.OutOfMemoryError as exc:
                gc.collect()
                _empty_cuda_cache()
                raise PredictionOutOfMemory(
                    f"out of accelerator memory at {settings['height']}x{settings['width']}, "
                    f"{settings['num_frames']} frames: try preset='preview', fewer frames, a smaller size or "
                    f"cpu_offload=True ({exc})"
                ) from exc

    def _predict_locked(self, conditioning, prompt, negative_prompt, settings, chosen, on_step, cancel,
                        started, torch) -> PredictionResult:  # fmt: skip
        from diffusers.pipelines.cosmos.pipeline_cosmos2_5_predict import DEFAULT_NEGATIVE_PROMPT

        h, w = settings["height"], settings["width"]
        fitted = np.stack([fit_frame(f, h, w, settings["fit"]) for f in conditioning])
        encode = Stopwatch(on_step, "encode", 1)  # prompt embeddings, then the VAE encode
        encode.report(0)
        t0 = time.monotonic()
        device = self.pipe._execution_device
        embeds = self.encode_prompt(prompt).to(device=device, dtype=self.dtype)
        negative = None
        if settings["guidance"] > 1.0:
            negative_text = negative_prompt if negative_prompt is not None else DEFAULT_NEGATIVE_PROMPT
            negative = self.encode_prompt(negative_text).to(device=device, dtype=self.dtype)
        encode_s = time.monotonic() - t0

        cond_latent_frames = 2 if len(fitted) >= 5 else 1
        watch = Stopwatch(on_step, "denoise", settings["steps"])
        generator = torch.Generator(device="cpu").manual_seed(settings["seed"])
        t1 = time.monotonic()
        if self.engine == "fast":
            out, stage_times = self._generate_fast(
                fitted, embeds, negative, settings, cond_latent_frames, generator, encode, watch, cancel
            )
            video_checked = False  # the fast loop never calls the pipeline, so nothing checked it yet
        else:
            encode.report(1)  # the pipeline encodes the frames inside its call
            out, stage_times, video_checked = self._generate_stock(
                fitted, embeds, negative, settings, cond_latent_frames, generator, watch, cancel
            )
        generate_s = time.monotonic() - t1
        if not video_checked:
            out = self._check_video_safety(out)
        metadata = {
            "adapter": self._active,
            "adapter_id": self._adapter_ids.get(self._active) if self._active else None,
            "base_fingerprint": self.fingerprint,
            "seed": settings["seed"],
            "prompt": prompt,
            "settings": {
                **settings,
                "preset": chosen_name(self.presets, chosen),
                "conditioning_frames": len(fitted),
                "conditioning_latent_frames": cond_latent_frames,
                "engine": self.engine,
                "dtype": str(self.dtype).removeprefix("torch."),
                "device": self.device,
                "safety_checker": self.safety,
            },
            "timings": {
                "encode_prompt_s": encode_s,
                "generate_s": generate_s,
                **stage_times,
                "total_s": time.monotonic() - started,
            },
        }
        return PredictionResult(frames=out, fps=float(settings["fps"]), metadata=metadata)

    def _generate_fast(self, fitted, embeds, negative, settings, cond_latent_frames, generator, encode,
                       watch, cancel) -> tuple[np.ndarray, dict[str, float]]:  # fmt: skip
        """fast_sampler.py's loop: same math as the stock call, without its waste."""
        import torch

        pipe, n = self.pipe, settings["num_frames"]
        approximation = fast_sampler.APPROX_FAST if settings["approximate"] else None
        t0 = time.monotonic()
        video, frames_in = fast_sampler.conditioning_video(fitted, cond_latent_frames)
        inputs = fast_sampler.prepare_inputs(
            pipe, video, frames_in, num_frames=n, height=settings["height"], width=settings["width"],
            prompt_embeds=embeds, negative_prompt_embeds=negative, generator=generator,
        )  # fmt: skip
        encode.report(1)
        t1 = time.monotonic()
        try:
            latents = fast_sampler.denoise(
                pipe, inputs, steps=settings["steps"], guidance=settings["guidance"],
                approximation=approximation, on_step=lambda i, _total: watch.report(i),
                should_stop=None if cancel is None else cancel.is_set,
            )  # fmt: skip
        except fast_sampler.SamplerCancelled as exc:
            raise PredictionCancelled(str(exc)) from exc
        if not bool(torch.isfinite(latents).all()):
            raise self._not_finite("the denoised latents", settings)
        t2 = time.monotonic()
        decode = Stopwatch(watch.callback, "decode", 1)
        decode.report(0)
        try:
            frames = fast_sampler.decode(pipe, latents, n)
        except FloatingPointError as exc:
            raise self._not_finite("the decoded video", settings) from exc
        decode.report(1)
        t3 = time.monotonic()
        return frames, {"vae_encode_s": t1 - t0, "denoise_s": t2 - t1, "vae_decode_s": t3 - t2}

    def _generate_stock(self, fitted, embeds, negative, settings, cond_latent_frames, generator, watch,
                        cancel) -> tuple[np.ndarray, dict[str, float], bool]:  # fmt: skip
        """The stock pipeline's ``__call__``, with progress and cancel through its step callback.

        Also returns whether the pipeline itself ran the video check: it does so only for its own
        guardrail class, so the calls are counted rather than assumed, and any it makes go through
        :meth:`_check_video_safety` so a refusal is reported the same way as on the fast engine.
        """
        import torch

        # [T, H, W, 3] uint8 -> [1, 3, T, H, W] in [-1, 1], the pipeline's preprocessed video form.
        video = torch.from_numpy(fitted).permute(3, 0, 1, 2).unsqueeze(0).float() / 127.5 - 1.0

        decode = Stopwatch(watch.callback, "decode", 1)

        def on_step_end(pipe: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            watch.report(i + 1)
            if cancel is not None and cancel.is_set():
                raise PredictionCancelled(f"cancelled after denoising step {i + 1} of {settings['steps']}")
            if i + 1 == settings["steps"]:
                latents = kwargs.get("latents")  # the pipeline's default tensor input of this callback
                if latents is not None and not bool(torch.isfinite(latents).all()):
                    raise self._not_finite("the denoised latents", settings)
                decode.report(0)  # the pipeline decodes right after its last step
            return kwargs

        checker = self.pipe.safety_checker
        pipeline_checks: list[int] = []

        def counted_check(frames: np.ndarray) -> np.ndarray:
            pipeline_checks.append(1)
            return self._check_video_safety(frames, check=original_check)

        original_check = checker.check_video_safety
        checker.check_video_safety = counted_check  # an instance attribute: shadows the method for this call
        try:
            output = self.pipe(
                video=video,
                prompt_embeds=embeds,
                negative_prompt_embeds=negative,
                height=settings["height"],
                width=settings["width"],
                num_frames=settings["num_frames"],
                num_inference_steps=settings["steps"],
                guidance_scale=settings["guidance"],
                generator=generator,
                num_latent_conditional_frames=cond_latent_frames,
                max_sequence_length=MAX_SEQUENCE_LENGTH,
                callback_on_step_end=on_step_end,
                output_type="np",
            )
        finally:
            del checker.check_video_safety
        decode.report(1)
        if not np.isfinite(output.frames[0]).all():
            raise self._not_finite("the decoded video", settings)
        return fast_sampler.to_uint8(output.frames[0]), {}, bool(pipeline_checks)

    def _not_finite(self, what: str, settings: dict[str, Any]) -> PredictionNotFinite:
        """The error for a NaN/inf prediction: where it showed, with what, and what to check."""
        adapter = f"adapter {self._active!r}" if self._active else "the base model alone"
        return PredictionNotFinite(
            f"{what} came out non-finite (NaN or inf) with {adapter} at guidance {settings['guidance']:g}: "
            f"damaged weights or a diverged adapter; no video was made (check the base weights with "
            f"'cosmos-ros model verify {self.layout.model_dir}')"
        )

    def _check_video_safety(
        self, frames: np.ndarray, check: Callable[[np.ndarray], Any] | None = None
    ) -> np.ndarray:
        """Run the safety checker on one uint8 [T, H, W, 3] video; its result replaces the frames.

        The guardrail returns ``None`` for an unsafe video (refused: a ``ValueError``, like an
        unsafe prompt) and may return altered frames (blurred faces, blanked video), which are kept.
        """
        check = check or self.pipe.safety_checker.check_video_safety
        checked = check(frames)
        if checked is None:
            raise ValueError("the safety checker refused the generated video")
        checked = np.asarray(checked)
        if checked.shape != frames.shape:
            raise RuntimeError(
                f"the safety checker returned a video of shape {checked.shape}, expected {frames.shape}"
            )
        return checked.astype(np.uint8, copy=False)


def _empty_cuda_cache() -> None:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # best effort while recovering
        pass
