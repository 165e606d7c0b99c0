"""A procedural robot world: scripted pick-and-place episodes drawn with OpenCV.

This is the world cosmos-mini (the project's small trained world model) is pretrained on, and
the world the demo records its bags in. One episode is a two-link arm of some *embodiment*
(link lengths, thickness, colours, gripper, base position, floor or ceiling mount, camera)
picking one of two blocks on a table and dropping it into a bowl, in a *scene* (background,
table, lighting, object colours and places). Its prompt names the block and the bowl, so the
prompt carries what the first frame cannot show: which block moves.

Embodiments come in two sets: :data:`PRETRAIN_EMBODIMENTS`, the only ones cosmos-mini was
trained on, and :data:`TARGET_EMBODIMENTS`, which pretraining never saw (other geometry and
camera, same task), so an adapter trained on a target's bags has something to learn.

Everything is a pure function of ``(embodiment, episode seed)``: the same arguments draw the
same pixels. Coordinates are in *world units*: the canonical camera shows x in [0, 1.5],
y in [0, 1] (y down), so one unit is the image height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

#: Colours (RGB) that blocks and bowls may take, by the word prompts use for them.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 35),
    "green": (40, 170, 60),
    "yellow": (230, 200, 40),
    "purple": (140, 60, 180),
    "blue": (40, 80, 210),
    "white": (235, 235, 235),
}
BLOCK_COLOURS = ("red", "green", "yellow", "purple")
BOWL_COLOURS = ("blue", "white")
#: Episode seeds: cosmos-mini trains on seeds from 0, is measured on held-out seeds from
#: HELD_OUT_SEED_BASE, and the demo records bags from DEMO_SEED_BASE (never rendered by the build).
HELD_OUT_SEED_BASE = 100_000
DEMO_SEED_BASE = 200_000
PROMPT_PREFIX = "The robot arm is performing a task. "


@dataclass(frozen=True)
class Camera:
    """Where the camera looks: zoom about the view centre, pan (world units), roll, mirror."""

    zoom: float = 1.0
    pan: tuple[float, float] = (0.0, 0.0)
    roll_deg: float = 0.0
    mirror: bool = False


@dataclass(frozen=True)
class Embodiment:
    """One robot: arm geometry and looks, and the camera that watches it."""

    name: str
    base_x: float
    mount: str  # "floor" (base on the table, elbow up) or "ceiling" (base above, elbow down)
    upper: float  # link lengths, world units
    fore: float
    thickness: float
    arm_rgb: tuple[int, int, int]
    joint_rgb: tuple[int, int, int]
    gripper: str  # "claw", "pad" or "ring"
    camera: Camera = field(default_factory=Camera)


#: The embodiments cosmos-mini is pretrained on.
PRETRAIN_EMBODIMENTS: dict[str, Embodiment] = {
    e.name: e
    for e in (
        Embodiment("grey_arm", 0.75, "floor", 0.42, 0.40, 0.045, (95, 95, 100), (30, 30, 30), "claw"),
        Embodiment("slim_arm", 0.60, "floor", 0.46, 0.44, 0.030, (60, 60, 140), (20, 20, 60), "pad",
                   Camera(zoom=1.1, pan=(0.05, 0.0))),
        Embodiment("stout_arm", 0.90, "floor", 0.38, 0.36, 0.060, (150, 110, 70), (70, 50, 30), "claw",
                   Camera(zoom=0.95, roll_deg=3.0)),
        Embodiment("white_arm", 0.70, "floor", 0.44, 0.38, 0.040, (225, 225, 220), (120, 120, 120), "pad",
                   Camera(zoom=1.05, pan=(-0.05, 0.02), roll_deg=-2.0)),
        Embodiment("teal_arm", 0.80, "floor", 0.40, 0.42, 0.050, (40, 140, 140), (20, 70, 70), "claw",
                   Camera(zoom=1.0, pan=(0.03, -0.02), mirror=True)),
        Embodiment("black_arm", 0.65, "floor", 0.48, 0.40, 0.036, (40, 40, 45), (110, 110, 110), "pad",
                   Camera(zoom=1.15, roll_deg=4.0, mirror=True)),
    )
}  # fmt: skip

#: Embodiments pretraining never saw: a ceiling-mounted arm seen through a zoomed, rolled camera.
TARGET_EMBODIMENTS: dict[str, Embodiment] = {
    e.name: e
    for e in (
        Embodiment("ceiling_arm", 0.55, "ceiling", 0.50, 0.48, 0.055, (235, 120, 30), (90, 40, 10), "ring",
                   Camera(zoom=1.2, pan=(0.02, 0.04), roll_deg=-6.0)),
    )
}  # fmt: skip

EMBODIMENTS: dict[str, Embodiment] = {**PRETRAIN_EMBODIMENTS, **TARGET_EMBODIMENTS}


@dataclass(frozen=True)
class Scene:
    """What one episode looks like apart from the robot."""

    background_rgb: tuple[int, int, int]
    table_rgb: tuple[int, int, int]
    table_y: float
    light_gain: float
    light_slope: float  # brightness change from top to bottom of the image
    block: str  # colour word of the block that is moved
    distractor: str  # colour word of the block that stays
    bowl: str
    block_x: float
    distractor_x: float
    bowl_x: float
    block_size: float

    def prompt(self, mirrored: bool = False) -> str:
        """The task in words; left and right as the camera sees them."""
        side = "left" if (self.bowl_x < 0.75) != mirrored else "right"
        return (
            f"{PROMPT_PREFIX}The robot arm picks up the {self.block} block and places it in the "
            f"{self.bowl} bowl on the {side}."
        )


@dataclass(frozen=True)
class Episode:
    """One scripted pick-and-place: an embodiment in a scene, ``frames`` long at ``fps``."""

    embodiment: Embodiment
    scene: Scene
    seed: int
    frames: int = 90
    fps: float = 30.0

    @property
    def prompt(self) -> str:
        return self.scene.prompt(mirrored=self.embodiment.camera.mirror)


def embodiment(name: str) -> Embodiment:
    """Look an embodiment up by name; the error lists the names there are."""
    try:
        return EMBODIMENTS[name]
    except KeyError:
        raise ValueError(f"unknown embodiment {name!r}; accepted: {', '.join(EMBODIMENTS)}") from None


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a scene: colours, lighting, and three well separated places on the table."""

    def jitter(rgb: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
        return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)  # type: ignore[return-value]

    block, distractor = rng.choice(BLOCK_COLOURS, size=2, replace=False)
    while True:
        xs = rng.uniform(0.2, 1.3, size=3)
        if min(abs(xs[0] - xs[1]), abs(xs[0] - xs[2]), abs(xs[1] - xs[2])) > 0.28:
            break
    return Scene(
        background_rgb=jitter((190, 198, 205), 25),
        table_rgb=jitter((125, 92, 62), 25),
        table_y=float(rng.uniform(0.74, 0.82)),
        light_gain=float(rng.uniform(0.85, 1.1)),
        light_slope=float(rng.uniform(-0.15, 0.15)),
        block=str(block),
        distractor=str(distractor),
        bowl=str(rng.choice(BOWL_COLOURS)),
        block_x=float(xs[0]),
        distractor_x=float(xs[1]),
        bowl_x=float(xs[2]),
        block_size=float(rng.uniform(0.10, 0.12)),
    )


def make_episode(embodiment_name: str, seed: int, frames: int = 90, fps: float = 30.0) -> Episode:
    """The episode ``seed`` of an embodiment (a pure function of its arguments)."""
    body = embodiment(embodiment_name)
    rng = np.random.default_rng([seed, _name_key(body.name)])
    return Episode(embodiment=body, scene=sample_scene(rng), seed=seed, frames=frames, fps=fps)


def _name_key(name: str) -> int:
    return int.from_bytes(name.encode()[:8].ljust(8, b"\0"), "little")


# ------------------------------------------------------------------------------------------------
# Motion: where the gripper is and whether it holds the block, as a function of progress in [0, 1]


def _ease(t: float) -> float:
    t = min(max(t, 0.0), 1.0)
    return 0.5 - 0.5 * math.cos(math.pi * t)


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * _ease(t)


def gripper_path(episode: Episode, progress: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(gripper position, block position, holding)`` at ``progress`` of the episode.

    Phases: reach above the block, descend, carry on an arc to above the bowl, lower and
    release, return home. The same script drives every embodiment.
    """
    s, body = episode.scene, episode.embodiment
    top = s.table_y - s.block_size / 2
    home = np.array([body.base_x, s.table_y - 0.55 if body.mount == "floor" else 0.45])
    above_block = np.array([s.block_x, top - 0.22])
    at_block = np.array([s.block_x, top])
    above_bowl = np.array([s.bowl_x, s.table_y - 0.3])
    in_bowl = np.array([s.bowl_x, s.table_y - 0.07])
    phases = (
        (0.18, home, above_block),
        (0.28, above_block, at_block),
        (0.36, at_block, above_block),
        (0.62, above_block, above_bowl),
        (0.72, above_bowl, in_bowl),
        (0.80, in_bowl, above_bowl),
        (1.00, above_bowl, home),
    )
    start = 0.0
    for index, (end, a, b) in enumerate(phases):
        if progress <= end or index == len(phases) - 1:
            t = (progress - start) / (end - start)
            position = _lerp(a, b, t)
            break
        start = end
    if progress < 0.28:
        return position, at_block, False
    if progress < 0.72:
        return position, position, True
    return position, in_bowl, False


def _elbow(base: np.ndarray, target: np.ndarray, upper: float, fore: float, up: bool) -> np.ndarray:
    """Two-link inverse kinematics; ``up`` picks the elbow above the line base-target."""
    d = target - base
    dist = min(max(float(np.hypot(*d)), 1e-6), upper + fore - 1e-4)
    cos_a = (upper**2 + dist**2 - fore**2) / (2 * upper * dist)
    a = math.acos(min(max(cos_a, -1.0), 1.0))
    heading = math.atan2(d[1], d[0])
    candidates = [base + upper * np.array([math.cos(heading + sign * a), math.sin(heading + sign * a)])
                  for sign in (-1.0, 1.0)]  # fmt: skip
    return min(candidates, key=lambda e: e[1]) if up else max(candidates, key=lambda e: e[1])


# ------------------------------------------------------------------------------------------------
# Drawing


class _Canvas:
    """A supersampled image with the camera's world-to-pixel projection."""

    SUPERSAMPLE = 2

    def __init__(self, height: int, width: int, camera: Camera) -> None:
        self.h, self.w = height * self.SUPERSAMPLE, width * self.SUPERSAMPLE
        self.out_h, self.out_w = height, width
        self.unit = self.h * camera.zoom  # pixels per world unit
        angle = math.radians(camera.roll_deg)
        self.rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        self.centre_world = np.array([0.75 + camera.pan[0], 0.5 + camera.pan[1]])
        self.camera = camera
        self.image = np.zeros((self.h, self.w, 3), np.uint8)

    def px(self, point: np.ndarray) -> tuple[int, int]:
        p = self.rot @ (np.asarray(point, float) - self.centre_world) * self.unit
        return round(self.w / 2 + float(p[0])), round(self.h / 2 + float(p[1]))

    def length(self, units: float) -> int:
        return max(1, round(units * self.unit))

    def polygon(self, points: list[np.ndarray], rgb: tuple[int, int, int]) -> None:
        import cv2

        pts = np.array([self.px(p) for p in points], np.int32)
        cv2.fillPoly(self.image, [pts], rgb, lineType=cv2.LINE_AA)

    def line(self, a: np.ndarray, b: np.ndarray, rgb: tuple[int, int, int], thickness: float) -> None:
        import cv2

        cv2.line(self.image, self.px(a), self.px(b), rgb, self.length(thickness), lineType=cv2.LINE_AA)

    def circle(
        self, centre: np.ndarray, radius: float, rgb: tuple[int, int, int], thickness: float = -1
    ) -> None:
        import cv2

        width = -1 if thickness < 0 else self.length(thickness)
        cv2.circle(self.image, self.px(centre), self.length(radius), rgb, width, lineType=cv2.LINE_AA)

    def finish(self, gain: float, slope: float) -> np.ndarray:
        import cv2

        small = cv2.resize(self.image, (self.out_w, self.out_h), interpolation=cv2.INTER_AREA)
        ramp = gain * (1.0 + slope * (np.linspace(-0.5, 0.5, self.out_h, dtype=np.float32)[:, None, None]))
        lit = np.clip(small.astype(np.float32) * ramp, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(lit[:, ::-1]) if self.camera.mirror else lit


def _rect(cx: float, cy: float, half_w: float, half_h: float) -> list[np.ndarray]:
    return [np.array(p) for p in ((cx - half_w, cy - half_h), (cx + half_w, cy - half_h),
                                  (cx + half_w, cy + half_h), (cx - half_w, cy + half_h))]  # fmt: skip


def render_frame(episode: Episode, index: int, height: int = 64, width: int = 96) -> np.ndarray:
    """Frame ``index`` of ``episode`` as uint8 RGB ``[height, width, 3]``."""
    s, body = episode.scene, episode.embodiment
    progress = index / max(episode.frames - 1, 1)
    canvas = _Canvas(height, width, body.camera)
    far = 10.0  # big enough to cover the view at any roll and zoom
    canvas.polygon(_rect(0.75, 0.5, far, far), s.background_rgb)
    canvas.polygon(_rect(0.75, s.table_y + far, far, far), s.table_rgb)
    # the bowl: a half ellipse standing on the table
    bowl_w, bowl_h = 0.16, 0.09
    arc = [np.array([s.bowl_x + bowl_w * math.cos(a), s.table_y - 0.005 + bowl_h * math.sin(a) - bowl_h])
           for a in np.linspace(0, math.pi, 16)]  # fmt: skip
    rim = [
        np.array([s.bowl_x - bowl_w, s.table_y - bowl_h]),
        np.array([s.bowl_x + bowl_w, s.table_y - bowl_h]),
    ]
    canvas.polygon([rim[1], *arc, rim[0]], COLOURS[s.bowl])
    half = s.block_size / 2
    canvas.polygon(_rect(s.distractor_x, s.table_y - half, half, half), COLOURS[s.distractor])
    gripper, block, holding = gripper_path(episode, progress)
    base = np.array([body.base_x, s.table_y if body.mount == "floor" else 0.02])
    elbow = _elbow(base, gripper + np.array([0.0, -0.06]), body.upper, body.fore, up=body.mount == "floor")
    wrist = gripper + np.array([0.0, -0.06])
    canvas.polygon(_rect(*block, half, half), COLOURS[s.block])
    canvas.line(base, elbow, body.arm_rgb, body.thickness)
    canvas.line(elbow, wrist, body.arm_rgb, body.thickness * 0.85)
    canvas.circle(elbow, body.thickness * 0.7, body.joint_rgb)
    canvas.circle(base, body.thickness * 1.1, body.joint_rgb)
    _draw_gripper(canvas, body, wrist, gripper, half, holding)
    return canvas.finish(s.light_gain, s.light_slope)


def _draw_gripper(canvas: _Canvas, body: Embodiment, wrist: np.ndarray, tip: np.ndarray, half: float,
                  holding: bool) -> None:  # fmt: skip
    open_by = half * (1.05 if holding else 1.6)
    t = body.thickness * 0.5
    if body.gripper == "ring":
        canvas.circle(wrist + np.array([0.0, 0.03]), 0.045, body.joint_rgb, thickness=t)
        return
    canvas.line(wrist - np.array([open_by, 0.0]), wrist + np.array([open_by, 0.0]), body.joint_rgb, t)
    for side in (-1.0, 1.0):
        finger_top = wrist + np.array([side * open_by, 0.0])
        finger_end = tip + np.array([side * (open_by if body.gripper == "pad" else open_by * 0.7), 0.0])
        canvas.line(finger_top, finger_end, body.joint_rgb, t)


def render_episode(episode: Episode, height: int = 64, width: int = 96,
                   start: int = 0, count: int | None = None) -> np.ndarray:  # fmt: skip
    """Frames ``start .. start+count`` of an episode, uint8 ``[T, height, width, 3]``."""
    stop = episode.frames if count is None else min(start + count, episode.frames)
    return np.stack([render_frame(episode, i, height, width) for i in range(start, stop)])


def with_frames(episode: Episode, frames: int, fps: float) -> Episode:
    """The same episode (same scene) recorded with another length and rate."""
    return replace(episode, frames=frames, fps=fps)


def all_prompts() -> list[str]:
    """Every prompt an episode can have (the world's whole task vocabulary), sorted."""
    prompts = set()
    for block in BLOCK_COLOURS:
        for bowl in BOWL_COLOURS:
            for bowl_x in (0.3, 1.2):
                scene = Scene(
                    (0, 0, 0), (0, 0, 0), 0.8, 1.0, 0.0, block, "green", bowl, 0.5, 1.0, bowl_x, 0.1
                )
                prompts.add(scene.prompt())
    return sorted(prompts)
