"""A read-only registry, even where the tests run as root (issue 18): export fails cleanly, writes nothing.

Why a subprocess: root ignores file modes, so a chmod alone proves nothing. The child keeps
uid 0 (the interpreter lives under root's 0700 home, so switching to 'nobody' cannot even start
Python) but loses CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER from its bounding set
before exec, so the kernel applies the modes to it as to any user.
"""

from __future__ import annotations

import ctypes
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from registry_helpers import make_adapter_folder

from cosmos_ros.registry import open_registry

_PR_CAPBSET_DROP = 24
_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def _drop_file_capabilities() -> None:
    """preexec_fn: drop the capabilities that let root ignore file modes (effective after exec)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {cap}) failed")


def _unprivileged() -> Callable[[], None] | None:
    """How to run the child so file modes bind it; skips, saying why, where that is not possible."""
    if not sys.platform.startswith("linux"):
        pytest.skip("read-only registry case needs Linux (capabilities or a non-root user)")
    if os.geteuid() != 0:
        return None  # modes already bind a normal user
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; sys.exit(0)"], preexec_fn=_drop_file_capabilities, check=False
    )
    if probe.returncode != 0:
        pytest.skip(
            "running as root and cannot drop CAP_DAC_OVERRIDE (no CAP_SETPCAP); folder cannot be read-only"
        )
    return _drop_file_capabilities


def _set_modes(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        if path.is_dir():
            path.chmod(0o755 if writable else 0o555)
        else:
            path.chmod((mode | stat.S_IWUSR) if writable else (mode & ~0o222))


@pytest.fixture
def read_only_registry(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "reg"
    with open_registry(root) as registry:
        registry.register(make_adapter_folder(tmp_path / "w", seed=3), "arm.pick", status="candidate")
    _set_modes(root, writable=False)
    try:
        yield root
    finally:
        _set_modes(root, writable=True)


def test_export_from_a_read_only_registry_is_one_line_and_leaves_no_bundle(
    read_only_registry: Path, tmp_path: Path
) -> None:
    preexec = _unprivileged()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    bundle = out_dir / "pick.tar"
    code = (
        "import sys; from cosmos_ros.cli import main; "
        f"sys.exit(main(['adapters', 'export', 'arm.pick@1', '-o', {str(bundle)!r}, "
        f"'--registry', {str(read_only_registry)!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=preexec,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    err = result.stderr
    assert result.returncode == 1, (result.returncode, err)
    assert "Traceback" not in err and err.startswith("cosmos-ros: error: ") and err.count("\n") == 1, err
    assert "read-only" in err and str(read_only_registry) in err, err
    assert list(out_dir.iterdir()) == []  # no bundle, no half-written temporary
