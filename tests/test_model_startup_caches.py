"""What a restarted node reuses: the compile cache where the runtime says, and Python's bytecode.

Importing ``torch._dynamo`` sets ``TORCHINDUCTOR_CACHE_DIR`` to PyTorch's default under /tmp, so
a cache folder given later was silently ignored (a reboot then cost a full recompilation). Each
case runs in a fresh interpreter: the variables and Inductor's state are process-wide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def _run(code: str, env: dict[str, str] | None = None) -> dict:
    own = ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")
    full_env = {k: v for k, v in os.environ.items() if k not in own}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=full_env, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_given_folder_wins_over_the_default_that_dynamo_set(tmp_path: Path) -> None:
    out = _run(
        f"""
        import json, os
        import diffusers  # imports torch._dynamo, which sets TORCHINDUCTOR_CACHE_DIR
        import torch
        before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
        from cosmos_ros.model.fast_sampler import set_compile_cache
        root = set_compile_cache({str(tmp_path / "cache")!r})
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        @torch.compile(dynamic=False)
        def f(x):
            return (x.sin() * 2 + 1).sum()

        f(torch.arange(8, dtype=torch.float32))
        print(json.dumps({{"before": before, "root": str(root), "inductor": cache_dir(),
                          "triton": os.environ["TRITON_CACHE_DIR"]}}))
        """
    )
    root = tmp_path / "cache"
    assert out["before"] is not None  # the premise: diffusers' imports already chose a folder
    assert Path(out["root"]) == root
    assert Path(out["inductor"]) == root / "inductor" and Path(out["triton"]) == root / "triton"
    written = [p for p in (root / "inductor").rglob("*") if p.is_file()]
    assert written, "the compiled function left nothing in the chosen cache folder"


@pytest.mark.parametrize("user_dir", [True, False])
def test_default_folder_keeps_a_users_own_choice(tmp_path: Path, user_dir: bool) -> None:
    env = {"HOME": str(tmp_path / "home")}
    if user_dir:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "mine")
    out = _run(
        """
        import json, os
        import diffusers
        from cosmos_ros.model.fast_sampler import set_compile_cache
        root = set_compile_cache()
        print(json.dumps({"root": str(root), "inductor": os.environ["TORCHINDUCTOR_CACHE_DIR"]}))
        """,
        env,
    )
    if user_dir:
        assert Path(out["inductor"]) == tmp_path / "mine" == Path(out["root"])
    else:
        default = tmp_path / "home" / ".cache" / "cosmos_ros" / "torch_compile"
        assert Path(out["root"]) == default and Path(out["inductor"]) == default / "inductor"


def test_missing_bytecode_is_named(tmp_path: Path) -> None:
    code = """
        import json
        from cosmos_ros.model.loading import missing_bytecode
        print(json.dumps({"why": missing_bytecode()}))
        """
    # an empty bytecode folder that Python may not write to: torch runs from source, as in such images
    empty = {"PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"), "PYTHONDONTWRITEBYTECODE": "1"}
    why = _run(code, empty)["why"]
    assert why is not None and "PYTHONDONTWRITEBYTECODE is set" in why and str(tmp_path / "pycache") in why
    # the same folder, writable: the first import fills it and the check is satisfied
    writable = {**empty, "PYTHONDONTWRITEBYTECODE": ""}
    assert _run(code, writable)["why"] is None
