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


class PromptEmbeddingCache:
    """Memory (LRU, ``max_items``) + optional disk cache of prompt embeddings (CPU tensors)."""

    def __init__(
        self, encoder_fingerprint: str, cache_dir: str | os.PathLike[str] | None = None, max_items: int = 256
    ) -> None:
        self.encoder_fingerprint = encoder_fingerprint
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
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
