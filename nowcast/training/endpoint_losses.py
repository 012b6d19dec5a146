"""Endpoint losses of a nowcaster's learned solver: where the student's endpoint latents are compared.

* ``mse`` — mean squared error of the latents (target: teacher endpoint latents, or the VAE
  encoding of the observed future frames);
* ``inception`` — the student's latents are decoded to frames, and the 2048-d Inception-v3 pool
  features of each frame (replicated to three channels) are compared with those of the target
  frames (decoded teacher endpoints, or the observed frames) by mean squared error;
* ``lpips`` — LPIPS (AlexNet) between decoded and target frames; needs the AlexNet weights.

:data:`LOSS_SPACE` says which kind of target each loss takes.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..solvers.matching import mse_loss

__all__ = ["LOSS_SPACE", "endpoint_loss"]

#: The target a loss compares with: latents (``latent``) or frames in [0, 1] (``frames``).
LOSS_SPACE = {"mse": "latent", "inception": "frames", "lpips": "frames"}


def _decoder(ldm) -> Callable[[torch.Tensor], torch.Tensor]:
    def decode(z: torch.Tensor) -> torch.Tensor:         # (B, Tt, L, h, w) → (B, Tt, H, W)
        return ldm.decode(z.to(next(ldm.vae.parameters()).dtype))
    return decode


def endpoint_loss(name: str, ldm, *, inception_weights=None, lpips_weights=None,
                  lpips_module: torch.nn.Module | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss(pred_latents, target) -> (B,)`` for a nowcaster ``ldm``.

    Parameters
    ----------
    name : {'mse', 'inception', 'lpips'}
        The loss.
    ldm : nowcast.models.ldm.LatentDiffusion
        The (frozen) nowcaster whose decoder maps latents to frames.
    inception_weights, lpips_weights : path-like, optional
        Explicit weight files (otherwise resolved through :mod:`nowcast.hub`).
    lpips_module : torch.nn.Module, optional
        A ready ``lpips.LPIPS``-like module (tests pass one with a random trunk).

    Raises
    ------
    ValueError
        For an unknown loss, or when the weights the loss needs are not on this machine.
    """
    from .. import hub

    if name not in LOSS_SPACE:
        raise ValueError(f"unknown loss {name!r}; available: {sorted(LOSS_SPACE)}")
    if name == "mse":
        return mse_loss
    decode = _decoder(ldm)
    if name == "inception":
        from ..verification.perceptual import InceptionFeatures

        try:
            net = InceptionFeatures(inception_weights).to(ldm.alphas_cumprod.device)
        except (hub.WeightsNotFoundError, hub.ChecksumError) as err:
            raise ValueError(f"--loss inception needs the Inception-v3 weights: {err}") from None

        def inception(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            frames = decode(pred)
            f_pred = net(frames).float()
            with torch.no_grad():
                f_true = net(target.to(frames.dtype)).float()
            return (f_pred - f_true).pow(2).reshape(len(pred), -1).mean(1)

        return inception
    from ..verification.perceptual import LPIPS, lpips_status

    if lpips_module is not None:
        metric = LPIPS(module=lpips_module)
    else:
        reason = lpips_status(lpips_weights)
        if reason is not None:
            raise ValueError(f"--loss lpips needs LPIPS's AlexNet weights, which are not here: {reason.rstrip('.')}. "
                             f"Use --loss mse or --loss inception, or give the weights "
                             f"(--set spanlift.lpips_weights=PATH or $NOWCAST_ALEXNET_WEIGHTS).")
        metric = LPIPS(lpips_weights)
    metric = metric.to(ldm.alphas_cumprod.device)

    def lpips(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        frames = decode(pred)
        return metric(frames, target.to(frames.dtype)).reshape(len(pred), -1).mean(1)

    return lpips
