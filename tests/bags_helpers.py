"""Shared fixtures for the bag_tools tests: small synthetic bags written with rosbags' writers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cosmos_ros.bag_tools.synthetic import SynthSpec, write_synthetic_bag

SOURCE_FPS = 30.0
SMALL = {"height": 64, "width": 96}
TARGET = ("--resolution", "32x48", "--clip-frames", "9")


def make_bag(folder: Path, name: str, fmt: str = "mcap", **spec: object) -> Path:
    """A test-pattern bag (64x96 frames at 30 fps) at folder/name (.bag appended for ros1)."""
    kwargs = {"frames": 40, "fps": SOURCE_FPS, "test_pattern": True, **SMALL, **spec}
    path = folder / (name + (".bag" if fmt == "ros1" else ""))
    return write_synthetic_bag(path, SynthSpec(**kwargs), fmt)  # type: ignore[arg-type]


#: What the ``cosmos-ros`` console script runs. Why not ``python -m cosmos_ros.cli``: that runs the
#: module as ``__main__``, so the handlers' ``cosmos_ros.cli.CliError`` is another class than the one
#: main() catches, and every user-facing error would end in a traceback.
_ENTRY = "import sys; from cosmos_ros.cli import main; sys.argv[0] = 'cosmos-ros'; sys.exit(main())"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _ENTRY, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def expected_source_index(grid_index: int, out_fps: float, n_source: int, spec: SynthSpec) -> int:
    """The nearest source frame to output time k / out_fps (ties go to the earlier frame)."""
    t = spec.start_ns + round(grid_index * 1e9 / out_fps)
    return min(range(n_source), key=lambda i: (abs(spec.stamp_ns(i) - t), i))
