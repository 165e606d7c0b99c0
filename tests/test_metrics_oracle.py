"""The evaluation's PSNR and SSIM against scikit-image's, an independent implementation.

Why: the gate's verdicts rest on these two numbers; a second, widely used implementation catches
a wrong window, constant, border rule or channel handling that a self-consistent test would not.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cosmos_ros.evaluation.metrics import psnr_per_frame, ssim_per_frame


def _pair(seed: int, shape: tuple[int, ...], noise: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish real video and a noisy, shifted prediction of it (uint8 [T, H, W, 3])."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, shape, dtype=np.uint8)
    real = np.stack([np.roll(base[0], t, axis=1) for t in range(shape[0])])
    fake = np.clip(np.roll(real, 1, axis=2).astype(np.float64) + rng.normal(0, noise, shape), 0, 255)
    return real, fake.round().astype(np.uint8)


@pytest.mark.parametrize(
    ("shape", "noise"), [((3, 64, 96, 3), 8.0), ((2, 48, 40, 3), 30.0), ((2, 17, 23, 3), 3.0)]
)
def test_psnr_and_ssim_agree_with_scikit_image(shape: tuple[int, ...], noise: float) -> None:
    real, fake = _pair(sum(shape), shape, noise)
    ours_psnr, ours_ssim = psnr_per_frame(real, fake), ssim_per_frame(real, fake)
    for t in range(shape[0]):
        assert ours_psnr[t] == pytest.approx(
            peak_signal_noise_ratio(real[t], fake[t], data_range=255), abs=1e-9
        )
        oracle = structural_similarity(
            real[t], fake[t], data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
            use_sample_covariance=False,
        )  # fmt: skip
        assert ours_ssim[t] == pytest.approx(oracle, abs=1e-6), (t, ours_ssim[t], oracle)


def test_identical_frames_give_infinite_psnr_and_ssim_one() -> None:
    real, _ = _pair(0, (2, 32, 32, 3), 0.0)
    assert np.isinf(psnr_per_frame(real, real)).all()
    assert ssim_per_frame(real, real) == pytest.approx(1.0)
    assert structural_similarity(real[0], real[0], data_range=255, channel_axis=-1) == pytest.approx(1.0)
