"""FID and KID arithmetic against scipy and the textbook formula; statistics files and folders."""

import numpy as np
import pytest
import scipy.linalg
import torch

from nowcast.imagegen.fid import (FeatureStats, compute_features, frechet_distance, kernel_distance,
                                  load_image_folder, reference_stats, to_uint8)


def _features(seed, n=300, d=16, shift=0.0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mix + shift


def _scipy_fid(f1, f2):
    """pytorch-fid / EDM: scipy.linalg.sqrtm of the product, real part of the trace."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(covmean)))


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_fid_equals_scipy_reference(shift):
    f1, f2 = _features(0), _features(1, shift=shift)
    ours = frechet_distance(FeatureStats.from_features(f1), FeatureStats.from_features(f2))
    assert ours == pytest.approx(_scipy_fid(f1, f2), rel=1e-9, abs=1e-10)


def test_fid_of_a_set_with_itself_is_zero_and_rank_deficient_covariances_work():
    f = _features(2, n=10, d=32)                                   # n < d: singular covariance
    s = FeatureStats.from_features(f)
    assert abs(frechet_distance(s, s)) < 1e-6 * np.trace(s.sigma)
    g = _features(3, n=10, d=32)
    assert frechet_distance(s, FeatureStats.from_features(g)) == pytest.approx(_scipy_fid(f, g), rel=1e-6)


def test_fid_of_gaussians_closed_form():
    # two diagonal Gaussians: FID = |Δμ|² + Σ (√a − √b)²
    a = FeatureStats(np.zeros(3), np.diag([1.0, 4.0, 9.0]), 0)
    b = FeatureStats(np.array([1.0, 0, 0]), np.diag([4.0, 4.0, 1.0]), 0)
    assert frechet_distance(a, b) == pytest.approx(1 + 1 + 0 + 4)


def _kid_by_definition(x, y):
    d, m = x.shape[1], len(x)
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_the_unbiased_mmd_definition():
    x, y = _features(4, n=25, d=6), _features(5, n=25, d=6, shift=0.3)
    # one subset of the full size is a permutation of each set: the estimate is the full-set MMD²
    assert kernel_distance(x, y, num_subsets=1, max_subset_size=25) == pytest.approx(_kid_by_definition(x, y))
    pool = _features(4, n=1200, d=6)
    same, other, shifted = pool[:400], pool[400:800], pool[800:] + 0.5   # two draws of one distribution
    assert abs(kernel_distance(same, other, num_subsets=20, max_subset_size=200)) < 0.1 * kernel_distance(
        same, shifted, num_subsets=20, max_subset_size=200)
    with pytest.raises(ValueError, match="features themselves"):
        kernel_distance(FeatureStats(np.zeros(2), np.eye(2), 0), x)


def test_npz_round_trip_and_edm_layout(tmp_path):
    s = FeatureStats.from_features(_features(6))
    path = tmp_path / "ref.npz"
    s.save(path)
    back = FeatureStats.load(path)
    assert np.array_equal(back.mu, s.mu) and np.array_equal(back.sigma, s.sigma) and back.n == 300
    assert np.array_equal(back.features, s.features)
    np.savez(tmp_path / "edm.npz", mu=s.mu, sigma=s.sigma)           # EDM's fid-refs hold only these
    assert reference_stats(tmp_path / "edm.npz").features is None
    np.savez(tmp_path / "bad.npz", x=s.mu)
    with pytest.raises(ValueError, match="missing mu, sigma"):
        FeatureStats.load(tmp_path / "bad.npz")


def test_to_uint8_matches_edm_generate():
    x = torch.tensor([-1.5, -1.0, 0.0, 0.999, 1.0, 2.0])
    # EDM generate.py: (x * 127.5 + 128).clip(0, 255).to(torch.uint8)
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255, 255]


def test_folder_statistics_equal_tensor_statistics(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(7)
    imgs = rng.integers(0, 256, size=(12, 3, 8, 8), dtype=np.uint8)
    for i, a in enumerate(imgs):
        Image.fromarray(a.transpose(1, 2, 0)).save(tmp_path / f"{i:03d}.png")
    loaded = load_image_folder(tmp_path)
    assert torch.equal(loaded, torch.from_numpy(imgs))
    extractor = lambda u8: u8.float().mean(dim=(2, 3))  # noqa: E731 — a tiny stand-in feature map
    a = reference_stats(tmp_path, extractor=extractor, batch_size=5)
    b = FeatureStats.from_features(compute_features(torch.from_numpy(imgs), extractor))
    assert np.allclose(a.mu, b.mu) and np.allclose(a.sigma, b.sigma)
    with pytest.raises(ValueError, match="no images"):
        load_image_folder(tmp_path / "empty" if (tmp_path / "empty").mkdir() is None else None)


def test_inception_images_equal_frame_path():
    from nowcast.verification.perceptual import InceptionFeatures

    net = InceptionFeatures()
    frames = torch.rand(2, 16, 16)
    with torch.no_grad():
        a = net(frames)
        b = net.images(frames[:, None] * 255)
    torch.testing.assert_close(a, b)
    assert a.shape == (2, 2048)
