"""A generation node that owns a group of GPUs: one process per GPU under torchrun (issue 22).

``torchrun --nproc_per_node=N -m cosmos_ros.nodes.generation_node --ros-args ...`` starts N
processes. Rank 0 runs the ROS node as usual; its runtime is a :class:`GroupRuntime`, which posts
every call that uses or changes the model (load, adapter loads and switches, warm-up, predict,
close) to the other ranks through torchrun's TCP store before making it itself. The followers run no
ROS node: :func:`follow` makes the same calls on a runtime loaded with context parallelism over the
group, so the all-to-alls inside the transformer line up and each rank attends to 1/N of the tokens.

Why the store and not ``broadcast_object_list``: a follower waits for the next goal for as long as
the node is idle, which a collective would turn into a timeout; the store also lets rank 0 time out
on a follower that stopped answering and fail the goal with that reason instead of hanging. A
follower that dies outright is torchrun's to handle: it stops the whole group (the goal's client
then loses the server). Without torchrun (``WORLD_SIZE`` unset or 1) nothing here runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

KEY = "cosmos_ros/group"
#: Seconds rank 0 waits for every follower to take a call (they poll every POLL_S s) or finish it.
REPLY_TIMEOUT_S = float(os.environ.get("COSMOS_ROS_GROUP_TIMEOUT_S", "120"))
POLL_S = 0.05


def group_size() -> int:
    """Processes torchrun started for this node (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank_device(device: str) -> str:
    """Each rank's own GPU (``cuda:LOCAL_RANK``) when the node asks for CUDA; the CPU stays the CPU."""
    if group_size() > 1 and str(device).startswith("cuda"):
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return str(device)


def load_runtime(model_path: str, **kwargs: Any) -> Any:
    """``CosmosRuntime.load`` alone, or on every rank of the group (rank 0 gets a :class:`GroupRuntime`)."""
    from cosmos_ros.model.runtime import CosmosRuntime

    if group_size() <= 1:
        return CosmosRuntime.load(model_path, **kwargs)
    kwargs["device"] = rank_device(kwargs.get("device", "cpu"))
    channel = _Channel()
    n = channel.call("load", (model_path,), kwargs)
    return GroupRuntime(channel.run(n, lambda: _load_parallel(model_path, kwargs)), channel)


def serve_group(run_node: Callable[[], int]) -> int:
    """Run ``run_node`` on rank 0 and :func:`follow` on the others; plain ``run_node()`` without a group."""
    if group_size() <= 1:
        return run_node()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        if dist.get_rank() != 0:
            # Ctrl-C reaches every rank; rank 0 alone decides, closing the followers through the channel
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            follow()
            return 0
        try:
            return run_node()
        finally:
            with contextlib.suppress(Exception):  # gone already when torchrun stopped the group
                _Channel().post("exit", (), {})
    finally:
        dist.destroy_process_group()


def _load_parallel(model_path: str, kwargs: dict[str, Any]) -> Any:
    import torch.distributed as dist
    from diffusers import ContextParallelConfig

    from cosmos_ros.model.runtime import CosmosRuntime

    config = ContextParallelConfig(ulysses_degree=dist.get_world_size())
    return CosmosRuntime.load(model_path, **kwargs, context_parallel=config)


class _Channel:
    """Numbered calls from rank 0 to the followers through the c10d store, with replies."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.store = dist.distributed_c10d._get_default_store()
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def _next(self) -> int:
        return int(self.store.add(f"{KEY}/count", 1)) - 1

    def post(self, method: str, args: tuple, kwargs: dict[str, Any]) -> int:
        n = self._next()
        self.store.set(f"{KEY}/msg/{n}", pickle.dumps((method, args, kwargs)))
        return n

    def wait(self, n: int, what: str) -> None:
        """Raise, naming the rank, when a follower does not reply to call ``n`` or reports an error."""
        keys = [f"{KEY}/{what}/{n}/{r}" for r in range(1, self.world)]
        try:
            self.store.wait(keys, timedelta(seconds=REPLY_TIMEOUT_S))
        except Exception as exc:
            late = [r for r, key in enumerate(keys, 1) if not self.store.check([key])]
            doing = "take" if what == "taken" else "finish"
            raise RuntimeError(
                f"GPU group: rank(s) {late} did not {doing} call {n} within {REPLY_TIMEOUT_S:g} s "
                f"(a follower died or hangs; {type(exc).__name__})"
            ) from exc
        for r, key in enumerate(keys, 1):
            error = self.store.get(key).decode()
            if error:
                raise RuntimeError(f"GPU group: rank {r} failed call {n}: {error}")

    def call(self, method: str, args: tuple, kwargs: dict[str, Any]) -> int:
        """Post a call and wait until every follower took it (so none is left behind)."""
        n = self.post(method, args, kwargs)
        self.wait(n, "taken")
        self.store.delete_key(f"{KEY}/msg/{n}")  # frames can be megabytes: the store keeps no goal's
        return n

    def run(self, n: int, local: Callable[[], Any]) -> Any:
        """Rank 0's part of call ``n``, then the followers' end (their errors count if ours succeeded)."""
        try:
            result = local()
        except BaseException:
            with contextlib.suppress(RuntimeError):  # rank 0's own exception is the one to report
                self.wait(n, "done")
            raise
        self.wait(n, "done")
        self.forget(n)
        return result

    def forget(self, n: int, cancel_checks: int = 0) -> None:
        """Drop call ``n``'s reply (and cancel) keys: the store lives as long as the node."""
        keys = [f"{KEY}/{what}/{n}/{r}" for what in ("taken", "done") for r in range(1, self.world)]
        for key in [*keys, *(f"{KEY}/cancel/{n}/{i}" for i in range(cancel_checks))]:
            self.store.delete_key(key)

    def reply(self, n: int, what: str, error: str = "") -> None:
        self.store.set(f"{KEY}/{what}/{n}/{self.rank}", error)


class SharedCancel:
    """A cancel event every rank reads alike: rank 0's flag, published at each check.

    The runtime checks ``cancel.is_set()`` at the same points on every rank (before start, each
    step), so the i-th check of call ``n`` has one key; a follower reads what rank 0 saw there and
    stops at the same step instead of waiting in an all-to-all rank 0 left.
    """

    def __init__(self, store: Any, n: int, local: threading.Event | None = None, leader: bool = True) -> None:
        self.store, self.prefix, self.local, self.leader = store, f"{KEY}/cancel/{n}", local, leader
        self.checks = 0

    def is_set(self) -> bool:
        key = f"{self.prefix}/{self.checks}"
        self.checks += 1
        if self.leader:
            flag = self.local is not None and self.local.is_set()
            self.store.set(key, "1" if flag else "0")
            return flag
        self.store.wait([key], timedelta(seconds=REPLY_TIMEOUT_S))
        return self.store.get(key) == b"1"


class GroupRuntime:
    """Rank 0's runtime: each model call is posted to the followers, then made here."""

    def __init__(self, runtime: Any, channel: _Channel) -> None:
        self.runtime, self.channel = runtime, channel

    def __getattr__(self, name: str) -> Any:  # read-only parts (pipe, stats, check_adapter, ...)
        return getattr(self.runtime, name)

    def _both(self, method: str, *args: Any, **kwargs: Any) -> Any:
        n = self.channel.call(method, args, kwargs)
        return self.channel.run(n, lambda: getattr(self.runtime, method)(*args, **kwargs))

    def warmup(self, preset: str = "full") -> float:
        return self._both("warmup", preset)

    def set_active_adapter(self, name: str | None) -> None:
        self._both("set_active_adapter", name)

    def unload_adapter(self, name: str) -> None:
        self._both("unload_adapter", name)

    def load_adapter(
        self, name: str, folder_or_file: str | os.PathLike[str], adapter_id: str | None = None
    ) -> Any:
        """The followers get the bytes: ``folder_or_file`` may be a private copy only this process sees."""
        path = Path(folder_or_file)
        files = {p.name: p.read_bytes() for p in (path.iterdir() if path.is_dir() else [path]) if p.is_file()}
        n = self.channel.call("load_adapter", (name, path.is_dir(), path.name, files, adapter_id), {})
        return self.channel.run(
            n, lambda: self.runtime.load_adapter(name, folder_or_file, adapter_id=adapter_id)
        )

    def predict(self, frames: Any, prompt: str, **kwargs: Any) -> Any:
        on_step, cancel = kwargs.pop("on_step", None), kwargs.pop("cancel", None)
        n = self.channel.call("predict", (frames, prompt), kwargs)
        shared = SharedCancel(self.channel.store, n, cancel)
        try:
            return self.channel.run(
                n, lambda: self.runtime.predict(frames, prompt, on_step=on_step, cancel=shared, **kwargs)
            )
        finally:
            with contextlib.suppress(Exception):
                self.channel.forget(n, shared.checks)

    def close(self) -> None:
        try:
            self._both("close")
        except Exception as exc:  # Ctrl-C: torchrun may have stopped the followers and its store first
            log.warning("GPU group: the followers did not close with rank 0 (%s)", exc)
            self.runtime.close()


def follow() -> None:
    """A follower's loop: make rank 0's calls on this rank's share of the group until ``exit``."""
    channel = _Channel()
    rank, store = channel.rank, channel.store
    if not log.handlers:  # no ROS logger here: one line per call on stderr, beside torchrun's own
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    runtime: Any = None
    tokens: list[int] = []
    n = 0
    while True:
        key = f"{KEY}/msg/{n}"
        if not store.check([key]):  # the node is idle (a timed-out store.wait would log each time)
            time.sleep(POLL_S)
            continue
        method, args, kwargs = pickle.loads(store.get(key))
        channel.reply(n, "taken")
        if method == "exit":
            if runtime is not None:
                runtime.close()
            return
        error = ""
        started = time.monotonic()
        tokens.clear()
        try:
            if method == "load":
                runtime = _load_parallel(args[0], kwargs)
                attn = runtime.pipe.transformer.transformer_blocks[0].attn1
                attn.register_forward_pre_hook(
                    lambda _m, a, _kw: tokens.append(int(a[0].shape[1])), with_kwargs=True
                )
            elif method == "load_adapter":
                _follow_load_adapter(runtime, *args)
            elif method == "predict":
                runtime.predict(*args, cancel=SharedCancel(store, n, leader=False), **kwargs)
            elif method == "close":
                runtime.close()
                runtime = None
            else:
                getattr(runtime, method)(*args, **kwargs)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        channel.reply(n, "done", error.replace("\n", " "))
        seen = f"; self-attention saw {sorted(set(tokens))} tokens" if tokens else ""
        log.log(
            logging.ERROR if error else logging.INFO,
            "rank %d of %d (pid %d): %s %s in %.2f s%s",
            rank,
            channel.world,
            os.getpid(),
            method,
            f"failed: {error}" if error else "done",
            time.monotonic() - started,
            seen,
        )
        n += 1


def _follow_load_adapter(
    runtime: Any, name: str, is_dir: bool, filename: str, files: dict[str, bytes], adapter_id: str | None
) -> None:
    with tempfile.TemporaryDirectory(prefix="cosmos_ros_adapter_") as tmp:
        for file, data in files.items():
            (Path(tmp) / file).write_bytes(data)
        runtime.load_adapter(name, tmp if is_dir else Path(tmp) / filename, adapter_id=adapter_id)
