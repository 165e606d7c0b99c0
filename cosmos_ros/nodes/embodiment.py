"""Embodiment files (config/embodiments/<name>.yaml): which adapter, camera and prompt a robot uses.

Plain Python (no rclpy). The capture node reads one at configure time; the launch file accepts
either a path or the name of a file shipped in the package's share directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

TASK_PLACEHOLDER = "{task}"


@dataclass(frozen=True)
class Embodiment:
    """What one robot's predictions need: see config/embodiments/example_arm.yaml."""

    name: str = ""
    adapter: str = ""
    camera_topic: str = ""
    prompt_template: str = ""
    resolution: tuple[int, int] | None = None
    num_frames: int = 0
    extra: dict[str, object] = field(default_factory=dict)


def load_embodiment(path: str | Path) -> Embodiment:
    """Read and check an embodiment YAML file; errors name the file and the field."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"embodiment file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    known = {"name", "adapter", "camera_topic", "prompt_template", "resolution", "num_frames"}
    resolution = data.get("resolution")
    if resolution is not None:
        if (
            not isinstance(resolution, list | tuple)
            or len(resolution) != 2
            or not all(isinstance(v, int) and v > 0 for v in resolution)
        ):
            raise ValueError(f"{path}: resolution must be [height, width] in pixels, got {resolution!r}")
        resolution = (int(resolution[0]), int(resolution[1]))
    for key in ("name", "adapter", "camera_topic", "prompt_template"):
        if key in data and not isinstance(data[key], str):
            raise ValueError(f"{path}: {key} must be a string, got {data[key]!r}")
    num_frames = data.get("num_frames", 0) or 0
    if not isinstance(num_frames, int) or (num_frames and (num_frames - 1) % 4):
        raise ValueError(f"{path}: num_frames must be 4k+1 (e.g. 29, 61, 93), got {num_frames!r}")
    return Embodiment(
        name=str(data.get("name", path.stem)),
        adapter=str(data.get("adapter", "")),
        camera_topic=str(data.get("camera_topic", "")),
        prompt_template=str(data.get("prompt_template", "")),
        resolution=resolution,
        num_frames=num_frames,
        extra={k: v for k, v in data.items() if k not in known},
    )


def build_prompt(template: str, task: str) -> str:
    """The prompt sent to the model: ``{task}`` in the template is replaced by the task text.

    A template without the placeholder is used as it is unless a task is given, which then
    replaces it (a goal's own prompt wins over the configured one).
    """
    template, task = template.strip(), task.strip()
    if TASK_PLACEHOLDER in template:
        return template.replace(TASK_PLACEHOLDER, task).strip()
    return task or template
