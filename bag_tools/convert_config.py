"""The parameters of ``bags convert`` and their checks (every one is recorded in dataset.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cosmos_ros.bag_tools.clips import check_clip_length
from cosmos_ros.bag_tools.dataset_format import CONVERT_STATE_DIR
from cosmos_ros.bag_tools.readers import TIME_SOURCES

from cosmos_ros.typed_fields import FieldTypeError, coerce

STATE_DIR = CONVERT_STATE_DIR
#: Height and width must be multiples of this: the model's VAE (8x) and patching (2x) need it,
#: as do training (training/config.py) and generation (cosmos_ros/model/runtime.py).
SIZE_MULTIPLE = 16
RESOLUTION_PRESETS: dict[str, tuple[int, int]] = {"432x768": (432, 768), "704x1280": (704, 1280)}
EPISODE_MODES: tuple[str, ...] = ("bag", "gap", "marker", "window")


class ConvertError(RuntimeError):
    """A conversion that cannot start (bad parameters, output folder in the way)."""


@dataclass
class ConvertConfig:
    """Every conversion parameter; all of them are recorded in dataset.yaml."""

    topics: list[str] = field(default_factory=list)
    fps: float = 16.0
    clip_frames: int = 93
    #: Output frames between clip starts; None = clip_frames (back to back, no overlap).
    stride: int | None = None
    height: int = 432
    width: int = 768
    fit: str = "crop"
    time_source: str = "header"
    #: Max distance between a grid time and its source frame; default one output frame period.
    tolerance_ms: float | None = None
    episode_mode: str = "bag"
    episode_gap_s: float = 2.0
    marker_topic: str | None = None
    episode_window_s: float = 60.0
    prompt: str | None = None
    prompt_map: str | None = None
    prompt_topic: str | None = None
    prompt_prefix: str = ""
    allow_empty_prompt: bool = False
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def tolerance_ns(self) -> int:
        ms = self.tolerance_ms if self.tolerance_ms is not None else 1000.0 / self.fps
        return round(ms * 1e6)

    def check(self) -> None:
        """Raise :class:`ConvertError` naming every bad parameter; makes whole-number floats floats.

        Why the float step: fps 16 from YAML and 16.0 from a flag must record the same parameters,
        or ``--resume`` would see different runs.
        """
        problems = config_type_problems(asdict(self))
        if problems:
            raise ConvertError("; ".join(problems))
        for f in fields(self):  # the types were checked above: this only widens ints to floats
            setattr(self, f.name, coerce(str(f.type), getattr(self, f.name)))
        check_clip_length(self.clip_frames)
        problems = []
        if self.fps <= 0:
            problems.append(f"fps must be > 0, got {self.fps}")
        if self.stride is not None and self.stride < 1:
            problems.append(f"stride must be >= 1, got {self.stride}")
        off = [
            f"{name} {value}"
            for name, value in (("height", self.height), ("width", self.width))
            if value < SIZE_MULTIPLE or value % SIZE_MULTIPLE
        ]
        if off:
            near = "x".join(
                str(max(SIZE_MULTIPLE, round(v / SIZE_MULTIPLE) * SIZE_MULTIPLE))
                for v in (self.height, self.width)
            )
            problems.append(
                f"resolution {self.height}x{self.width} (HEIGHTxWIDTH): {' and '.join(off)} "
                f"{'are not positive multiples' if len(off) > 1 else 'is not a positive multiple'} of "
                f"{SIZE_MULTIPLE}, which the model and the trainer need; accepted: multiples of "
                f"{SIZE_MULTIPLE} such as 432x768 or 704x1280 (nearest: {near})"
            )
        if self.fit not in ("crop", "letterbox"):
            problems.append(f"fit must be crop or letterbox, got {self.fit!r}")
        if self.time_source not in TIME_SOURCES:
            problems.append(f"time source must be one of {', '.join(TIME_SOURCES)}, got {self.time_source!r}")
        if self.episode_mode not in EPISODE_MODES:
            problems.append(
                f"episode mode must be one of {', '.join(EPISODE_MODES)}, got {self.episode_mode!r}"
            )
        if self.episode_mode == "marker" and not self.marker_topic:
            problems.append("episode mode 'marker' needs a marker topic")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1):
            problems.append("val/test fractions must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            problems.append("val + test fractions must leave some training data (< 1)")
        if problems:
            raise ConvertError("; ".join(problems))


def config_type_problems(values: Mapping[str, Any]) -> list[str]:
    """'key: value is not accepted; expected ...' for each value of the wrong type (unknown keys skipped).

    Why: values from YAML arrive untyped; a string where a number belongs must be named here, not
    surface later as a TypeError deep inside the conversion.
    """
    declared = {f.name: str(f.type) for f in fields(ConvertConfig)}
    problems = []
    for name, value in values.items():
        if name not in declared:
            continue
        try:
            coerce(declared[name], value)
        except FieldTypeError as exc:
            problems.append(f"{name}: {value!r} is not accepted; expected {exc.accepted}")
    return problems
