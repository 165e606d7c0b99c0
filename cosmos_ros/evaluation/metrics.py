"""Video metrics as pure functions of uint8 ``[T, H, W, 3]`` RGB arrays (numpy + OpenCV only).

Three families, so that an adapter cannot look good on one axis while drifting on another:

- fidelity to the real continuation: PSNR and SSIM per frame, and PSNR over the pixels that move in
  the real clip only (a static background otherwise dominates whole-frame PSNR); the "still" prediction
  (the last conditioning frame repeated) is the baseline a model must beat there;
- temporal stability: frame-difference statistics, global brightness flicker and optical-flow
  warping error (Farneback), computed the same way for the real clip so the two can be compared;
- geometric consistency: the Sampson error (in pixels) of SIFT matches against a fundamental matrix,
  between frame pairs of one camera (temporal) and between two cameras of one rig (cross-view). The
  definition follows NVIDIA's Cosmos multi-view evaluation: the per-match error is the square root of
  the first-order (Sampson) geometric error of *every* match (not only the RANSAC inliers), averaged
  per frame pair; cross-view pools the matches of all frames into one fundamental matrix because the
  rig is rigid. We use SIFT + Lowe's ratio test instead of SuperPoint/LightGlue (no learned weights).

When a Sampson error cannot be measured (too few keypoints or matches, a degenerate fit), the value
is NaN and a reason string says why; these functions never raise on image content.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Peak value of uint8 pixels: the PSNR/SSIM data range.
DATA_RANGE = 255.0
#: The fewest ratio-test matches a fundamental matrix is fitted to (the 8-point algorithm's minimum).
MIN_MATCHES = 8
#: Grey levels (0-255, max over RGB) a real pixel must change by, against the last conditioning frame,
#: to count as moving: above H.264/JPEG noise on static surfaces (a few levels), below real motion.
MOTION_THRESHOLD = 12


def _video(frames: np.ndarray, name: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must be a video shaped [T, H, W, 3], got {tuple(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError(f"{name} holds no frames")
    return frames


def _pair(real: np.ndarray, generated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both videos checked and shaped alike, in their own dtype (metrics convert frame by frame:
    a whole clip in float64 is gigabytes and made these metrics memory-bound)."""
    real = _video(real, "real video")
    generated = _video(generated, "generated video")
    if real.shape != generated.shape:
        raise ValueError(
            f"real {tuple(real.shape)} and generated {tuple(generated.shape)} videos must have the same "
            "shape; crop or resize before comparing"
        )
    return real, generated


def _gray(frame: np.ndarray) -> np.ndarray:
    """BT.601 luma as float64 in [0, 255]."""
    frame = np.asarray(frame, dtype=np.float64)
    return frame[..., 0] * 0.299 + frame[..., 1] * 0.587 + frame[..., 2] * 0.114


def _gray_u8(frame: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(_gray(frame)), 0, 255).astype(np.uint8)


def finite_mean(values: np.ndarray | list[float]) -> float:
    """Mean of the finite values (NaN when there are none); +inf only when every value is +inf."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size:
        return float(finite.mean())
    if arr.size and np.all(arr == np.inf):
        return math.inf
    return math.nan


# --------------------------------------------------------------------------------------------------
# Fidelity


def psnr_per_frame(real: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """PSNR in dB of each frame over all pixels and channels; ``inf`` for identical frames."""
    real, generated = _pair(real, generated)
    mse = np.array(
        [
            np.mean((r.astype(np.float64) - g.astype(np.float64)) ** 2)
            for r, g in zip(real, generated, strict=True)
        ]
    )
    with np.errstate(divide="ignore"):
        return np.where(mse == 0, np.inf, 10.0 * np.log10(DATA_RANGE**2 / np.maximum(mse, 1e-300)))


def moving_mask(
    real_window: np.ndarray, conditioning_frames: int, threshold: int = MOTION_THRESHOLD
) -> np.ndarray:
    """Boolean ``[H, W]`` mask of the pixels that move in the real continuation.

    A pixel moves when, in any continuation frame (``real_window[conditioning_frames:]``), some channel
    differs from the last conditioning frame by more than ``threshold`` grey levels (default
    :data:`MOTION_THRESHOLD`, so codec noise on a static background is not motion). Only the real clip
    decides: a model is then judged on the same pixels whatever it generated.
    """
    real_window = _video(real_window, "real video")
    frames = real_window.shape[0]
    if not 1 <= conditioning_frames < frames:
        raise ValueError(
            f"conditioning_frames must be in [1, {frames - 1}] for a {frames}-frame video, "
            f"got {conditioning_frames}"
        )
    reference = real_window[conditioning_frames - 1].astype(np.int16)
    mask = np.zeros(real_window.shape[1:3], dtype=bool)
    for frame in real_window[conditioning_frames:]:  # frame by frame: int16 copies of a clip are large
        mask |= np.abs(frame.astype(np.int16) - reference).max(axis=-1) > threshold
    return mask


def psnr_masked(real: np.ndarray, generated: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB over the ``mask``-ed pixels (all channels) of all frames together.

    The squared error is pooled over frames and masked pixels before the logarithm (one MSE, not a mean
    of per-frame PSNRs: a few moving pixels per frame give too noisy a per-frame value). ``inf`` when
    the masked pixels are identical; NaN when the mask is empty (nothing to measure).
    """
    real, generated = _pair(real, generated)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != real.shape[1:3]:
        raise ValueError(f"mask {tuple(mask.shape)} must match the frame size {tuple(real.shape[1:3])}")
    count = int(mask.sum())
    if count == 0:
        return math.nan
    total = sum(
        float(np.sum((r[mask].astype(np.float64) - g[mask].astype(np.float64)) ** 2))
        for r, g in zip(real, generated, strict=True)
    )
    mse = total / (count * real.shape[0] * real.shape[-1])
    return math.inf if mse == 0 else 10.0 * math.log10(DATA_RANGE**2 / mse)


def still_prediction(conditioning: np.ndarray, num_frames: int) -> np.ndarray:
    """The "nothing moves" baseline: the conditioning frames, then the last one repeated to ``num_frames``.

    A model that does not beat this on the continuation has learnt nothing about motion.
    """
    conditioning = _video(conditioning, "conditioning frames")
    if num_frames <= conditioning.shape[0]:
        raise ValueError(
            f"num_frames ({num_frames}) must exceed the {conditioning.shape[0]} conditioning frames"
        )
    tail = np.repeat(conditioning[-1:], num_frames - conditioning.shape[0], axis=0)
    return np.concatenate([conditioning, tail])


def ssim_per_frame(real: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """SSIM (Wang et al. 2004) of each frame: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03.

    Computed per RGB channel and averaged; the 5-pixel border the window cannot cover is excluded
    (as scikit-image does) when the frame is large enough.
    """
    import cv2

    real, generated = _pair(real, generated)
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    out = np.empty(real.shape[0], dtype=np.float64)
    for t in range(real.shape[0]):
        x, y = real[t].astype(np.float64), generated[t].astype(np.float64)
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
            (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        )
        h, w = ssim_map.shape[:2]
        if h > 10 and w > 10:
            ssim_map = ssim_map[5 : h - 5, 5 : w - 5]
        out[t] = float(ssim_map.mean())
    return out


# --------------------------------------------------------------------------------------------------
# Temporal stability


def frame_difference_stats(video: np.ndarray) -> dict[str, float]:
    """Statistics of consecutive-frame differences on luma, in grey levels (0-255).

    ``frame_diff_mean``/``frame_diff_std``: mean and spread of the per-transition mean absolute
    difference (how much the picture changes); ``brightness_flicker``: mean absolute change of the
    frame's mean brightness (global flicker, unaffected by motion that keeps brightness).
    NaN for a single-frame video.
    """
    video = _video(video, "video")
    if video.shape[0] < 2:
        return {"frame_diff_mean": math.nan, "frame_diff_std": math.nan, "brightness_flicker": math.nan}
    gray = _gray(video)
    diffs = np.abs(np.diff(gray, axis=0)).reshape(gray.shape[0] - 1, -1).mean(axis=1)
    brightness = gray.reshape(gray.shape[0], -1).mean(axis=1)
    return {
        "frame_diff_mean": float(diffs.mean()),
        "frame_diff_std": float(diffs.std()),
        "brightness_flicker": float(np.abs(np.diff(brightness)).mean()),
    }


def _farneback(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.calcOpticalFlowFarneback(
        prev, nxt, None, pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
    )


def warp_error_per_pair(video: np.ndarray) -> np.ndarray:
    """Optical-flow warping error of each consecutive frame pair, in grey levels (0-255).

    Frame ``t`` is warped onto frame ``t+1`` with the Farneback flow from ``t+1`` to ``t``; the error
    is the mean absolute luma difference over pixels that land inside the image and pass a
    forward-backward flow consistency check (occluded or mismatched pixels are left out, as in Lai
    et al. 2018). A video that moves smoothly scores low; flicker and popping score high.
    """
    import cv2

    video = _video(video, "video")
    gray = [_gray_u8(f) for f in video]
    h, w = gray[0].shape
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    errors = np.empty(max(len(gray) - 1, 0), dtype=np.float64)
    for t in range(len(gray) - 1):
        back = _farneback(gray[t + 1], gray[t])  # for each pixel of t+1: where it came from in t
        fwd = _farneback(gray[t], gray[t + 1])
        map_x, map_y = grid_x + back[..., 0], grid_y + back[..., 1]
        warped = cv2.remap(gray[t].astype(np.float32), map_x, map_y, cv2.INTER_LINEAR)
        fwd_at = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR)
        round_trip = ((back + fwd_at) ** 2).sum(axis=-1)
        bound = 0.01 * ((back**2).sum(axis=-1) + (fwd_at**2).sum(axis=-1)) + 0.5
        inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
        valid = inside & (round_trip < bound)
        diff = np.abs(warped - gray[t + 1].astype(np.float32))
        errors[t] = float(diff[valid].mean()) if valid.any() else float(diff.mean())
    return errors


def temporal_stability(video: np.ndarray) -> dict[str, float]:
    """Frame-difference statistics plus mean warping error of one video."""
    stats = frame_difference_stats(video)
    stats["warp_error"] = finite_mean(warp_error_per_pair(video)) if len(video) > 1 else math.nan
    return stats


# --------------------------------------------------------------------------------------------------
# Geometric consistency (Sampson error)


@dataclass(frozen=True)
class SampsonSettings:
    """How matches are found and the fundamental matrix is fitted (kept in metrics.json)."""

    ratio: float = 0.75
    ransac_threshold_px: float = 1.0
    ransac_confidence: float = 0.999
    min_matches: int = MIN_MATCHES
    max_keypoints: int = 2048
    frame_gap: int = 1

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SampsonResult:
    """Sampson error of matched points against one fundamental matrix; NaN with ``reason`` if unmeasured.

    ``reason`` may also accompany a measured value, to say what was left out of it (see ``ok``).
    """

    mean_px: float
    median_px: float
    num_matches: int
    num_inliers: int
    reason: str | None = None
    per_pair_mean_px: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Measured (a number, possibly with a note in ``reason``), not NaN."""
        return not math.isnan(self.mean_px)


def _sift_features(image: np.ndarray, settings: SampsonSettings) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    sift = cv2.SIFT_create(nfeatures=settings.max_keypoints)
    keypoints, descriptors = sift.detectAndCompute(_gray_u8(image), None)
    points = np.array([kp.pt for kp in keypoints], dtype=np.float64).reshape(-1, 2)
    return points, descriptors


def match_sift(
    image_a: np.ndarray, image_b: np.ndarray, settings: SampsonSettings = SampsonSettings()
) -> tuple[np.ndarray, np.ndarray, str | None]:
    """SIFT keypoints matched with Lowe's ratio test: ``(points_a [N,2], points_b [N,2], reason)``.

    ``reason`` is set (and the arrays are empty) when an image has fewer than two keypoints.
    """
    import cv2

    pts_a, desc_a = _sift_features(image_a, settings)
    pts_b, desc_b = _sift_features(image_b, settings)
    empty = np.zeros((0, 2), dtype=np.float64)
    if desc_a is None or desc_b is None or len(pts_a) < 2 or len(pts_b) < 2:
        return empty, empty, f"too few SIFT keypoints ({len(pts_a)} and {len(pts_b)}; need at least 2 each)"
    knn = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_a, desc_b, k=2)
    good = [
        pair[0] for pair in knn if len(pair) == 2 and pair[0].distance < settings.ratio * pair[1].distance
    ]
    if not good:
        return empty, empty, None
    idx_a = np.array([m.queryIdx for m in good])
    idx_b = np.array([m.trainIdx for m in good])
    return pts_a[idx_a], pts_b[idx_b], None


def sampson_distances(points_a: np.ndarray, points_b: np.ndarray, fundamental: np.ndarray) -> np.ndarray:
    """Per-match Sampson distance in pixels, ``sqrt((b^T F a)^2 / (|F a|_12^2 + |F^T b|_12^2))``.

    ``F`` maps points of image a to epipolar lines in image b (``b^T F a = 0``), as OpenCV returns it
    for ``findFundamentalMat(a, b)``. The denominator uses both images, so the distance is symmetric.
    """
    ones = np.ones((len(points_a), 1))
    a = np.hstack([points_a, ones])
    b = np.hstack([points_b, ones])
    fa = a @ fundamental.T  # F a
    ftb = b @ fundamental  # F^T b
    algebraic = np.sum(b * fa, axis=1)
    denom = fa[:, 0] ** 2 + fa[:, 1] ** 2 + ftb[:, 0] ** 2 + ftb[:, 1] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(np.where(denom > 0, algebraic**2 / denom, 0.0))


def _fit_and_score(
    points_a: np.ndarray, points_b: np.ndarray, settings: SampsonSettings
) -> tuple[np.ndarray | None, int, str | None]:
    """Fit F with RANSAC; return (per-match distances or None, inliers, reason)."""
    import cv2

    n = len(points_a)
    if n < settings.min_matches:
        return None, 0, f"only {n} SIFT matches after the ratio test (need at least {settings.min_matches})"
    motion = np.abs(points_b - points_a).max()
    if motion < 1e-6:
        # Identical point sets: every skew-symmetric F explains them exactly; the error is zero.
        return np.zeros(n), n, None
    try:
        fundamental, mask = cv2.findFundamentalMat(
            points_a, points_b, cv2.FM_RANSAC, settings.ransac_threshold_px, settings.ransac_confidence
        )
    except cv2.error as exc:
        return None, 0, f"fundamental matrix fit failed: {str(exc).strip().splitlines()[-1]}"
    if fundamental is None or fundamental.shape[0] < 3:
        return None, 0, "fundamental matrix fit failed (degenerate matches)"
    distances = sampson_distances(points_a, points_b, fundamental[:3].astype(np.float64))
    return distances, int(mask.sum()) if mask is not None else 0, None


def sampson_error(
    image_a: np.ndarray, image_b: np.ndarray, settings: SampsonSettings = SampsonSettings()
) -> SampsonResult:
    """Sampson error between two images (two frames of one camera, or two cameras at one time)."""
    points_a, points_b, reason = match_sift(image_a, image_b, settings)
    if reason is not None:
        return SampsonResult(math.nan, math.nan, 0, 0, reason)
    distances, inliers, reason = _fit_and_score(points_a, points_b, settings)
    if distances is None:
        return SampsonResult(math.nan, math.nan, len(points_a), 0, reason)
    mean = float(distances.mean())
    return SampsonResult(mean, float(np.median(distances)), len(points_a), inliers, None, [mean])


def temporal_sampson_error(video: np.ndarray, settings: SampsonSettings = SampsonSettings()) -> SampsonResult:
    """Sampson error between frames ``t`` and ``t + frame_gap`` of one camera, averaged over pairs.

    Pairs that cannot be measured are left out of the mean; the reason names how many were left
    out. All pairs failing gives NaN with the first pair's reason.
    """
    video = _video(video, "video")
    gap = settings.frame_gap
    if video.shape[0] <= gap:
        return SampsonResult(math.nan, math.nan, 0, 0, f"video has {video.shape[0]} frames; need > {gap}")
    pairs = [sampson_error(video[t], video[t + gap], settings) for t in range(video.shape[0] - gap)]
    good = [p for p in pairs if p.ok]
    failed = [p for p in pairs if not p.ok]
    per_pair = [p.mean_px for p in pairs]
    if not good:
        return SampsonResult(
            math.nan, math.nan, 0, 0, f"no frame pair measurable: {failed[0].reason}", per_pair
        )
    reason = None
    if failed:
        reason = f"{len(failed)} of {len(pairs)} frame pairs left out (first: {failed[0].reason})"
    return SampsonResult(
        float(np.mean([p.mean_px for p in good])),
        float(np.mean([p.median_px for p in good])),
        sum(p.num_matches for p in good),
        sum(p.num_inliers for p in good),
        reason,
        per_pair,
    )


def cross_view_sampson_error(
    view_a: np.ndarray, view_b: np.ndarray, settings: SampsonSettings = SampsonSettings()
) -> SampsonResult:
    """Sampson error between two synchronised cameras of a rigid rig.

    Matches of every time step are pooled into one fundamental matrix (the rig does not change), then
    the per-match errors are averaged per time step and over time steps.
    """
    view_a = _video(view_a, "first view")
    view_b = _video(view_b, "second view")
    if view_a.shape[0] != view_b.shape[0]:
        raise ValueError(f"views must have the same frame count, got {view_a.shape[0]} and {view_b.shape[0]}")
    pooled_a: list[np.ndarray] = []
    pooled_b: list[np.ndarray] = []
    counts: list[int] = []
    reasons: list[str] = []
    for frame_a, frame_b in zip(view_a, view_b, strict=True):
        pa, pb, reason = match_sift(frame_a, frame_b, settings)
        if reason:
            reasons.append(reason)
        pooled_a.append(pa)
        pooled_b.append(pb)
        counts.append(len(pa))
    points_a, points_b = np.concatenate(pooled_a), np.concatenate(pooled_b)
    distances, inliers, reason = _fit_and_score(points_a, points_b, settings)
    if distances is None:
        extra = f" ({reasons[0]})" if reasons else ""
        return SampsonResult(math.nan, math.nan, len(points_a), 0, f"{reason}{extra}")
    bounds = np.cumsum([0, *counts])
    per_step = [float(distances[s:e].mean()) if e > s else math.nan for s, e in itertools.pairwise(bounds)]
    return SampsonResult(
        finite_mean(per_step), float(np.median(distances)), len(points_a), inliers, None, per_step
    )


# --------------------------------------------------------------------------------------------------
# LPIPS (optional, never downloaded)

#: torchvision's AlexNet checkpoint that ``lpips.LPIPS(net="alex")`` loads from the torch hub cache.
ALEXNET_CHECKPOINT = "alexnet-owt-7be5be79.pth"


@dataclass(frozen=True)
class LpipsAvailability:
    available: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason}


def lpips_availability() -> LpipsAvailability:
    """Whether LPIPS can run offline: the ``lpips`` package and its backbone weights are on disk.

    LPIPS is never downloaded by this project; when it is missing the report says so.
    """
    if importlib.util.find_spec("lpips") is None:
        return LpipsAvailability(False, "the 'lpips' Python package is not installed")
    try:
        import torch.hub

        checkpoint = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_CHECKPOINT
    except Exception as exc:  # torch missing or broken: LPIPS cannot run either way
        return LpipsAvailability(False, f"torch is not usable: {exc}")
    if not checkpoint.is_file():
        return LpipsAvailability(
            False, f"AlexNet backbone weights not found in the torch hub cache ({checkpoint})"
        )
    return LpipsAvailability(True, f"lpips with AlexNet weights from {checkpoint}")


def lpips_per_frame(real: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """LPIPS (AlexNet) per frame; call only when :func:`lpips_availability` says it is available."""
    availability = lpips_availability()
    if not availability.available:
        raise RuntimeError(f"LPIPS is not available: {availability.reason}")
    import lpips
    import torch

    real, generated = _pair(real, generated)
    model = lpips.LPIPS(net="alex", verbose=False).eval()

    def to_tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    with torch.no_grad():
        return model(to_tensor(real), to_tensor(generated)).flatten().double().numpy()
