"""Prompt-embedding cache: the (7B) text encoder runs once per distinct prompt.

Embeddings live in memory and, when a folder is given, on disk as safetensors files keyed by
sha256(text-encoder fingerprint, max length, prompt). When every prompt a request needs is
cached, the text encoder need not be on the GPU, or loaded at all.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


#: The system turn the stock pipeline's ``_get_prompt_embeds`` puts before every prompt.
STOCK_SYSTEM_PROMPT = "You are a helpful assistant who will provide prompts to an image generator."


def prompt_token_count(tokenizer: Any, prompt: str) -> int:
    """How many tokens the text encoder is given for ``prompt``, before truncation.

    The conversation is the stock pipeline's (system turn + the prompt in the chat template), so
    the count is what ``max_sequence_length`` cuts.
    """
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": STOCK_SYSTEM_PROMPT}]},
        {"role": "user", "content": [{"type": "text", "text": prompt}]},
    ]
    ids = tokenizer.apply_chat_template(
        conversation,
        tokenize=True,
        add_generation_prompt=False,
        add_vision_id=False,
        tokenizer_kwargs={"verbose": False},  # this module says it, with the limit that applies
    )
    if not isinstance(ids, list) and "input_ids" in ids:
        ids = ids["input_ids"]
    return len(ids)


def warn_if_truncated(tokenizer: Any, prompt: str, max_length: int) -> int:
    """Log a warning when ``prompt`` is longer than the text encoder reads; returns its token count.

    Why: the pipeline truncates to ``max_length`` without a word (stock diffusers too), so the
    end of a long prompt silently has no effect on the video.
    """
    count = prompt_token_count(tokenizer, prompt)
    if count > max_length:
        log.warning(
            "prompt is %d tokens (with the chat template), over the text encoder's limit of %d: its last "
            "%d tokens are cut off and do not affect the video; shorten it (starts %r)",
            count,
            max_length,
            count - max_length,
            prompt[:60],
        )
    return count


def check_cache_dir(cache_dir: str | os.PathLike[str]) -> Path:
    """The cache folder, created if missing; ValueError naming it where it cannot be a folder.

    Why here and early: the first write happens after the model loaded (a minute in), and a file
    given as the folder failed there with a traceback.
    """
    path = Path(cache_dir).expanduser()
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        what = "is a file" if blocker == path else f"lies under {blocker}, which is a file"
        raise ValueError(f"prompt cache {path} {what}; give a folder for the cached prompt embeddings")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"prompt cache {path}: cannot create the folder ({exc.strerror or exc})") from exc
    return path


class PromptEmbeddingCache:
    """Memory (LRU, ``max_items``) + optional disk cache of prompt embeddings (CPU tensors)."""

    def __init__(
        self, encoder_fingerprint: str, cache_dir: str | os.PathLike[str] | None = None, max_items: int = 256
    ) -> None:
        self.encoder_fingerprint = encoder_fingerprint
        self.cache_dir = check_cache_dir(cache_dir) if cache_dir is not None else None
        self.max_items = max_items
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def key(self, prompt: str, max_length: int) -> str:
        material = f"{self.encoder_fingerprint}\0{max_length}\0{prompt}".encode()
        return hashlib.sha256(material).hexdigest()

    def _path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.safetensors"

    def get(self, prompt: str, max_length: int) -> Any | None:
        key = self.key(prompt, max_length)
        if key in self._memory:
            self._memory.move_to_end(key)
            self.hits += 1
            return self._memory[key]
        path = self._path(key)
        if path is not None and path.is_file():
            from safetensors.torch import load_file

            try:
                tensor = load_file(path)["prompt_embeds"]
            except Exception as exc:  # a damaged cache entry is only a miss
                log.warning("ignoring unreadable prompt cache entry %s: %s", path, exc)
            else:
                self._remember(key, tensor)
                self.hits += 1
                return tensor
        self.misses += 1
        return None

    def put(self, prompt: str, max_length: int, embeds: Any) -> None:
        key = self.key(prompt, max_length)
        embeds = embeds.detach().to("cpu").contiguous()
        self._remember(key, embeds)
        path = self._path(key)
        if path is not None:
            from safetensors.torch import save

            from cosmos_ros.atomic import atomic_write_bytes

            path.parent.mkdir(parents=True, exist_ok=True)
            meta = {"encoder_fingerprint": self.encoder_fingerprint, "max_length": str(max_length)}
            atomic_write_bytes(path, save({"prompt_embeds": embeds}, metadata=meta))

    def __contains__(self, item: tuple[str, int]) -> bool:
        key = self.key(*item)
        path = self._path(key)
        return key in self._memory or (path is not None and path.is_file())

    def _remember(self, key: str, tensor: Any) -> None:
        self._memory[key] = tensor
        self._memory.move_to_end(key)
        while len(self._memory) > self.max_items:
            self._memory.popitem(last=False)
