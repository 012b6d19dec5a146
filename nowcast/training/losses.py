"""Endpoint losses of learned solvers, for the nowcaster and for image models: one registry.

A loss is ``loss(pred, target) -> (B,)``, ``pred`` the student's endpoint (with gradients) and
``target`` the teacher's endpoint or, for the nowcaster, the observed future.

* ``mse`` — mean squared error of the endpoints themselves (the nowcaster's latents, or images);
* ``inception`` — mean squared error of the 2048-d Inception-v3 pool features;
* ``lpips`` — LPIPS (AlexNet v0.1); needs the AlexNet weights;
* ``crps`` — the fair CRPS (Ferro 2014) of ``members`` consecutive endpoints that share one target
  (the members of one forecast) against it, in decoded frames: trained against the observed future,
  it rewards a spread that matches the error, not only an accurate mean (nowcaster only).

The perceptual losses see frames: the nowcaster's latents are decoded first (``to_frames``) and
compared with frames in [0, 1]; image models' endpoints are images in [−1, 1] (``images=True``),
mapped to Inception's [0, 255] scale or given to LPIPS as they are. :data:`LOSS_SPACE` says which
kind of target each loss takes for the nowcaster.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..solvers.matching import mse_loss

__all__ = ["LOSSES", "LOSS_SPACE", "endpoint_loss"]

#: The endpoint losses.
LOSSES = ("mse", "inception", "lpips", "crps")
#: The target a loss compares with, for the nowcaster: latents (``latent``) or frames in [0, 1] (``frames``).
LOSS_SPACE = {"mse": "latent", "inception": "frames", "lpips": "frames", "crps": "frames"}


def endpoint_loss(name: str, *, to_frames: Callable | None = None, images: bool = False, device=None,
                  inception_weights=None, lpips_weights=None,
                  lpips_module: torch.nn.Module | None = None,
                  members: int = 4) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(pred, target) -> (B,)`` by name.

    Parameters
    ----------
    name : {'mse', 'inception', 'lpips'}
        The loss.
    to_frames : callable, optional
        Maps the student's endpoint to what the perceptual losses compare (the nowcaster's decoder,
        latents ``(B, T, L, h, w)`` → frames ``(B, T, H, W)``); identity when not given.
    images : bool
        Endpoints are images ``(B, C, H, W)`` in ``[−1, 1]`` rather than frames in ``[0, 1]``.
    device : str or torch.device, optional
        Where the perceptual network runs.
    inception_weights, lpips_weights : path-like, optional
        Explicit weight files (otherwise resolved through :mod:`nowcast.hub`).
    lpips_module : torch.nn.Module, optional
        A ready ``lpips.LPIPS``-like module (tests pass one with a random trunk).
    members : int
        ``crps``: consecutive endpoints forming one ensemble (the batch is a multiple of it).

    Returns
    -------
    callable
        The loss; perceptual ones carry their feature network as ``loss.network``.

    Raises
    ------
    ValueError
        For an unknown loss, or when the weights the loss needs are not on this machine.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; available: {sorted(LOSSES)}")
    if name == "mse":
        return mse_loss
    to_frames = to_frames or (lambda x: x)
    if name == "crps":
        if images:
            raise ValueError("the crps loss scores ensembles of nowcasts; image models have no observed target")
        return _fair_crps(to_frames, members)
    net = _inception(inception_weights) if name == "inception" else _lpips(lpips_weights, lpips_module)
    if device is not None:
        net = net.to(device)
    if name == "inception":
        feats = (lambda x: net.images(((x + 1) * 127.5).clamp(0, 255))) if images else net

        def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            frames = to_frames(pred)
            f_pred = feats(frames).float()
            with torch.no_grad():
                f_true = feats(target.to(frames.dtype)).float()
            return (f_pred - f_true).pow(2).reshape(len(pred), -1).mean(1)
    else:
        dist = net.images if images else net

        def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            frames = to_frames(pred)
            return dist(frames, target.to(frames.dtype)).reshape(len(pred), -1).mean(1)

    loss.network = net
    return loss


def _fair_crps(to_frames: Callable, members: int) -> Callable:
    if members < 2:
        raise ValueError(f"the crps loss needs at least 2 members per forecast, got {members}")

    def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if len(pred) % members:
            raise ValueError(f"a batch of {len(pred)} endpoints is not made of {members}-member forecasts")
        x = to_frames(pred)
        x = x.reshape(-1, members, *x.shape[1:])
        y = target.to(x.dtype).reshape(-1, members, *target.shape[1:])[:, 0]
        skill = (x - y[:, None]).abs().mean(1)
        pairs = (x[:, :, None] - x[:, None]).abs().sum((1, 2))
        crps = (skill - pairs / (2 * members * (members - 1))).flatten(1).mean(1)      # (forecasts,)
        return crps.repeat_interleave(members)

    loss.members = members
    return loss


def _inception(weights):
    from .. import hub
    from ..verification.perceptual import InceptionFeatures

    try:
        return InceptionFeatures(weights)
    except (hub.WeightsNotFoundError, hub.ChecksumError) as err:
        raise ValueError(f"the inception loss needs the Inception-v3 weights: {err}") from None


def _lpips(weights, module):
    from ..verification.perceptual import LPIPS, lpips_status

    if module is not None:
        return LPIPS(module=module)
    reason = lpips_status(weights)
    if reason is not None:
        raise ValueError(f"the lpips loss needs LPIPS's AlexNet weights, which are not here: {reason.rstrip('.')}. "
                         "Use the mse or inception loss, or give the weights ($NOWCAST_ALEXNET_WEIGHTS, or "
                         "--set spanlift.lpips_weights=PATH for the nowcaster).")
    return LPIPS(weights)
