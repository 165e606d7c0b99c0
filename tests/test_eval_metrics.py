"""Metric tests against known values: identity, analytic PSNR/SSIM, synthetic camera geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from eval_helpers import camera_sweep, make_scene, random_warp

from cosmos_ros.evaluation import metrics


@pytest.fixture(scope="module")
def scene():
    return make_scene(seed=0)


@pytest.fixture(scope="module")
def sweep(scene):
    return camera_sweep(scene, frames=5)


def test_identical_videos_give_infinite_psnr_and_unit_ssim(sweep):
    assert np.all(np.isinf(metrics.psnr_per_frame(sweep, sweep)))
    np.testing.assert_allclose(metrics.ssim_per_frame(sweep, sweep), 1.0, atol=1e-9)
    assert metrics.finite_mean(metrics.psnr_per_frame(sweep, sweep)) == math.inf


def test_gaussian_noise_gives_analytic_psnr():
    rng = np.random.default_rng(0)
    real = np.full((4, 128, 128, 3), 128.0)
    sigma = 5.0
    noisy = real + rng.normal(0.0, sigma, real.shape)
    expected = 10 * math.log10(255.0**2 / sigma**2)
    np.testing.assert_allclose(metrics.psnr_per_frame(real, noisy), expected, atol=0.05)
    # Rounded to uint8, the quantisation adds 1/12 grey level^2 of variance (Sheppard's correction).
    noisy_u8 = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    expected_u8 = 10 * math.log10(255.0**2 / (sigma**2 + 1 / 12))
    np.testing.assert_allclose(
        metrics.psnr_per_frame(real.astype(np.uint8), noisy_u8), expected_u8, atol=0.05
    )


def test_ssim_of_two_flat_images_matches_the_closed_form():
    a, b = 100.0, 140.0
    real = np.full((1, 32, 32, 3), a)
    gen = np.full((1, 32, 32, 3), b)
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)  # variance terms cancel for flat images
    np.testing.assert_allclose(metrics.ssim_per_frame(real, gen), expected, rtol=1e-9)


def test_shape_mismatch_is_a_clear_error(sweep):
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr_per_frame(sweep, sweep[:, :-2])


def test_temporal_stability_is_zero_for_a_still_video_and_higher_for_flicker(sweep):
    still = np.repeat(sweep[:1], 4, axis=0)
    stats = metrics.temporal_stability(still)
    assert stats["frame_diff_mean"] == 0 and stats["brightness_flicker"] == 0
    assert stats["warp_error"] < 0.05  # Farneback finds tiny sub-pixel flows even in a still video

    smooth = metrics.temporal_stability(sweep)
    flicker = sweep.astype(np.int16) + np.array([0, 25, 0, 25, 0])[:, None, None, None]
    flicker = metrics.temporal_stability(np.clip(flicker, 0, 255).astype(np.uint8))
    assert flicker["brightness_flicker"] > 10 * smooth["brightness_flicker"]
    assert flicker["warp_error"] > 5 * smooth["warp_error"]
    # Smooth camera motion is explained by optical flow: small warping error despite large differences.
    assert smooth["warp_error"] < 0.5 * smooth["frame_diff_mean"]


def test_sampson_is_zero_for_identical_frames_and_views(sweep):
    still = np.repeat(sweep[:1], 3, axis=0)
    result = metrics.temporal_sampson_error(still)
    assert result.ok and result.mean_px == 0.0 and result.num_matches > 50
    cross = metrics.cross_view_sampson_error(sweep, sweep)
    assert cross.ok and cross.mean_px == 0.0


def test_temporal_sampson_separates_consistent_motion_from_random_warps(sweep):
    consistent = metrics.temporal_sampson_error(sweep)
    rng = np.random.default_rng(1)
    warped = np.stack([random_warp(frame, rng) for frame in sweep])
    inconsistent = metrics.temporal_sampson_error(warped)
    assert consistent.ok and inconsistent.ok
    assert consistent.mean_px < 0.5
    assert inconsistent.mean_px > 1.0
    assert inconsistent.mean_px > 3 * consistent.mean_px
    assert len(consistent.per_pair_mean_px) == len(sweep) - 1


def test_cross_view_sampson_separates_a_rigid_rig_from_independent_warps(scene, sweep):
    second_camera = camera_sweep(scene, frames=5, offset=(0.3, 0.0, 0.0))
    consistent = metrics.cross_view_sampson_error(sweep, second_camera)
    rng = np.random.default_rng(2)
    warped = np.stack([random_warp(frame, rng) for frame in second_camera])
    inconsistent = metrics.cross_view_sampson_error(sweep, warped)
    assert consistent.ok and inconsistent.ok
    assert consistent.mean_px < 0.6
    assert inconsistent.mean_px > 3 * consistent.mean_px


def test_sampson_on_textureless_frames_is_nan_with_a_reason():
    flat = np.full((3, 64, 64, 3), 128, np.uint8)
    result = metrics.temporal_sampson_error(flat)
    assert math.isnan(result.mean_px) and "keypoints" in result.reason
    one = metrics.sampson_error(flat[0], flat[1])
    assert math.isnan(one.mean_px) and not one.ok


def test_temporal_sampson_names_the_frame_pairs_it_left_out(sweep):
    video = sweep.copy()
    video[2] = 128  # a blank frame: the pairs (1, 2) and (2, 3) have no keypoints to match
    result = metrics.temporal_sampson_error(video)
    assert result.ok and math.isfinite(result.mean_px) and result.mean_px < 0.5
    assert result.reason is not None and result.reason.startswith("2 of 4 frame pairs left out")
    assert "keypoints" in result.reason
    per_pair = result.per_pair_mean_px
    assert [math.isnan(v) for v in per_pair] == [False, True, True, False]
    assert metrics.temporal_sampson_error(sweep).reason is None  # nothing left out: no note


def test_too_few_matches_is_nan_with_a_reason(sweep):
    settings = metrics.SampsonSettings(min_matches=100_000)
    result = metrics.sampson_error(sweep[0], sweep[1], settings)
    assert math.isnan(result.mean_px)
    assert "need at least 100000" in result.reason


def test_sampson_distance_formula_on_a_known_fundamental_matrix():
    # Pure horizontal translation: F = [e]_x with e = (1, 0, 0); epipolar lines are rows y' = y.
    fundamental = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    a = np.array([[10.0, 20.0], [30.0, 40.0]])
    b = np.array([[15.0, 20.0], [31.0, 44.0]])  # second point is 4 px off its epipolar line
    # Sampson distance splits the 4 px between both images: 4 / sqrt(2).
    np.testing.assert_allclose(metrics.sampson_distances(a, b, fundamental), [0.0, 4 / math.sqrt(2)])


def test_lpips_availability_is_reported_without_downloading():
    availability = metrics.lpips_availability()
    assert isinstance(availability.available, bool) and availability.reason
    if not availability.available:
        with pytest.raises(RuntimeError, match="LPIPS is not available"):
            metrics.lpips_per_frame(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8))


def test_metrics_are_deterministic(sweep):
    rng = np.random.default_rng(3)
    warped = np.stack([random_warp(frame, rng) for frame in sweep])
    first = metrics.temporal_sampson_error(warped)
    second = metrics.temporal_sampson_error(warped)
    assert first.per_pair_mean_px == second.per_pair_mean_px
    np.testing.assert_array_equal(metrics.warp_error_per_pair(warped), metrics.warp_error_per_pair(warped))


# --------------------------------------------------------------------------------------------------
# Moving pixels and the still baseline

_SIDE, _STEP, _X0, _Y0 = 8, 2, 10, 20


def _moving_square(frames: int = 5, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A white square sliding right by _STEP px per frame over a dark static texture; and its path."""
    rng = np.random.default_rng(4)
    background = rng.integers(0, 100, (size, size, 3), dtype=np.uint8)
    video = np.repeat(background[None], frames, axis=0)
    path = np.zeros((size, size), bool)
    for t in range(frames):
        x = _X0 + _STEP * t
        video[t, _Y0 : _Y0 + _SIDE, x : x + _SIDE] = 255
        path[_Y0 : _Y0 + _SIDE, x : x + _SIDE] = True
    return video, path


def test_moving_mask_is_exactly_the_path_of_a_moving_square():
    video, path = _moving_square()
    mask = metrics.moving_mask(video, conditioning_frames=1)
    assert mask.dtype == bool and mask.shape == path.shape
    np.testing.assert_array_equal(mask, path)  # every position the square took, nothing else
    # Measured against the LAST conditioning frame: the column the square left before it does not move.
    assert not metrics.moving_mask(video[:3], conditioning_frames=2)[:, _X0].any()


def test_moving_mask_ignores_codec_noise_below_the_threshold():
    video, path = _moving_square()
    rng = np.random.default_rng(5)
    noise = rng.integers(-metrics.MOTION_THRESHOLD, metrics.MOTION_THRESHOLD + 1, video.shape)
    noisy = video.astype(np.int16)
    noisy[1:] += noise[1:]  # continuation frames only: up to the threshold away from frame 0
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(metrics.moving_mask(noisy, 1), path)
    assert metrics.moving_mask(noisy, 1, threshold=0).mean() > 0.5  # without a threshold, noise is motion
    with pytest.raises(ValueError, match="conditioning_frames"):
        metrics.moving_mask(video, conditioning_frames=5)


def test_psnr_masked_is_infinite_for_a_perfect_prediction_of_the_moving_pixels():
    video, path = _moving_square()
    cont = video[1:]
    assert metrics.psnr_masked(cont, cont, path) == math.inf
    wrong_background = cont.copy()
    wrong_background[:, ~path] = 0  # errors only where nothing moves: invisible to the masked PSNR
    assert metrics.psnr_masked(cont, wrong_background, path) == math.inf
    assert math.isnan(metrics.psnr_masked(cont, cont, np.zeros_like(path)))  # nothing moves: unmeasured


def test_psnr_masked_pools_the_squared_error_over_frames_and_masked_pixels():
    real = np.zeros((2, 4, 4, 3), np.uint8)
    gen = real.copy()
    gen[0, 0, 0] = 10  # one wrong pixel (3 channels) in the first frame only
    mask = np.zeros((4, 4), bool)
    mask[0, :2] = True  # 2 masked pixels x 2 frames x 3 channels = 12 values, 3 of them off by 10
    expected = 10 * math.log10(255.0**2 / (3 * 10**2 / 12))
    assert metrics.psnr_masked(real, gen, mask) == pytest.approx(expected)


def test_a_prediction_right_on_the_background_but_wrong_on_the_mover_scores_far_lower_on_moving_pixels():
    video, _ = _moving_square()
    frozen = metrics.still_prediction(video[:1], len(video))  # the square never moves
    whole = metrics.finite_mean(metrics.psnr_per_frame(video[1:], frozen[1:]))
    moving = metrics.psnr_masked(video[1:], frozen[1:], metrics.moving_mask(video, 1))
    assert math.isfinite(moving) and moving < whole - 10  # the static background hid the error


def test_still_prediction_repeats_the_last_conditioning_frame():
    video, _ = _moving_square()
    still = metrics.still_prediction(video[:2], 5)
    assert still.shape == (5, *video.shape[1:]) and still.dtype == np.uint8
    np.testing.assert_array_equal(still[:2], video[:2])
    assert all(np.array_equal(frame, video[1]) for frame in still[2:])
    with pytest.raises(ValueError, match="num_frames"):
        metrics.still_prediction(video[:2], 2)


def test_the_still_prediction_of_a_static_clip_is_perfect_and_has_no_moving_pixels(sweep):
    from cosmos_ros.evaluation.protocol import measure_generated, measure_real

    static = np.repeat(sweep[:1], 5, axis=0)
    still = metrics.still_prediction(static[:1], 5)
    values, series, notes = measure_generated(static, still, 1, metrics.SampsonSettings())
    assert values["psnr"] == math.inf and all(v == math.inf for v in series["psnr"])
    assert math.isnan(values["psnr_moving"]) and "no moving pixels" in notes["psnr_moving"]
    real_values, _ = measure_real(static, 1, metrics.SampsonSettings())
    assert real_values["moving_fraction"] == 0.0
    moving_values, _, moving_notes = measure_generated(
        sweep, metrics.still_prediction(sweep[:1], 5), 1, metrics.SampsonSettings()
    )
    assert math.isfinite(moving_values["psnr_moving"]) and "psnr_moving" not in moving_notes
    assert moving_values["psnr_moving"] < moving_values["psnr"]
