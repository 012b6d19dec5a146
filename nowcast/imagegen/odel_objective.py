"""Training objective and sampler of ODE_t(ODE_l): flow matching with time shortcuts (Frans et al.,
"One Step Diffusion via Shortcut Models", 2024) and length consistency across depths (Gudovskiy et
al., WACV 2026).

Convention (as :mod:`.odel`): ``x_t = (1 − t)·x_0 + t·ε``, ``t = 1`` is noise; the network
``s(x, t, d, depth)`` predicts the average velocity over a step of size ``d`` towards the data, so a
sampler step is ``x_{t−d} = x_t − d·s(x_t, t, d)``. The loss has three terms on one batch:

* **flow matching** (``d = 0``): ``‖s(x_t, t, 0) − (ε − x_0)‖²``;
* **self-consistency** (a ``shortcut_fraction`` of the batch, ``d = 2⁻ᵏ``): one step of size ``d`` must
  equal two steps of size ``d/2``, ``‖s(x_t, t, d) − ½[s(x_t, t, d/2) + s(x_{t−d/2}, t − d/2, d/2)]‖²``,
  the target without gradient, from the network being trained (``shortcut_targets="online"``, the
  default: each step size learns from the one below it at once) or from its EMA (``"ema"``: every
  level of the recursion then lags the one below by the EMA's horizon, too slow for a few thousand
  CPU steps, where the step-size-conditioned outputs stay near the EMA's zero initialisation);
* **length consistency** (a ``length_fraction`` of the batch): the output at the batch's depth must
  equal the EMA network's at the full depth, ``‖s_b(x_t, t, d) − s̄_B(x_t, t, d)‖²``.

The depth of a batch is drawn from ``depths``. Sampling (:mod:`.odel_sampling`) runs on the solver
core with a schedule of steps and blocks per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ShortcutConfig", "shortcut_loss"]


@dataclass
class ShortcutConfig:
    """Weights and fractions of the ODE_t(ODE_l) objective.

    Attributes
    ----------
    depths : tuple of int
        Depths a batch may run at (one drawn per batch).
    shortcut_fraction : float
        Share of the batch trained for self-consistency (the rest: flow matching at ``d = 0``).
    length_fraction : float
        Share of the batch whose target is the EMA network at full depth.
    min_log2_step : int
        Shortcut steps are ``d = 2^-k`` for ``k = 0 … min_log2_step − 1``; the half-steps of the smallest
        one (``2^-min_log2_step``) are taken with the instantaneous velocity (``d = 0``, the flow-matching
        rows), which grounds the recursion in what flow matching trains (as Frans et al. do).
    shortcut_targets : {'online', 'ema'}
        The network the self-consistency targets come from (the length-consistency targets always
        come from the EMA network at full depth).
    """

    depths: tuple = (4, 8, 12)
    shortcut_fraction: float = 0.25
    length_fraction: float = 0.125
    min_log2_step: int = 7
    shortcut_targets: str = "online"

    def __post_init__(self):
        if self.shortcut_targets not in ("online", "ema"):
            raise ValueError(f"shortcut_targets must be 'online' or 'ema', got {self.shortcut_targets!r}")


def _split(b: int, fraction: float) -> int:
    return int(round(b * fraction))


def shortcut_loss(model, ema, x0: torch.Tensor, generator: torch.Generator, cfg: ShortcutConfig,
                  y: torch.Tensor | None = None) -> tuple:
    """The ODE_t(ODE_l) loss of a batch.

    Parameters
    ----------
    model, ema : LengthAdaptiveDiT
        The network trained and its EMA (the targets' network).
    x0 : torch.Tensor
        ``(B, C, H, W)`` data.
    generator : torch.Generator
        Draws noise, times, step sizes and the depth.
    cfg : ShortcutConfig
        Fractions and depths.
    y : torch.Tensor, optional
        Class labels.

    Returns
    -------
    tuple
        ``(loss, parts)``: the mean squared error over the whole batch and its three terms.
    """
    b, dev = x0.shape[0], x0.device
    full = model.cfg.blocks
    depth = int(cfg.depths[int(torch.randint(len(cfg.depths), (1,), generator=generator))])
    eps = torch.randn(x0.shape, generator=generator).to(dev)
    n_sc = _split(b, cfg.shortcut_fraction)
    k = torch.randint(0, cfg.min_log2_step, (b,), generator=generator)
    d = torch.where(torch.arange(b) < n_sc, 2.0 ** (-k.float()), torch.zeros(b)).to(dev)
    # t ∈ (d, 1]: a shortcut step of size d from t stays inside [0, 1]
    t = (d + (1 - d) * (1 - torch.rand(b, generator=generator).to(dev))).clamp(max=1.0)
    x_t = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * eps
    target = eps - x0
    with torch.no_grad():
        if n_sc:
            h = d[:n_sc] / 2
            # the smallest step's halves: the instantaneous velocity (d = 0), which flow matching trains
            h_in = torch.where(h <= 2.0 ** -cfg.min_log2_step, torch.zeros_like(h), h)
            xs, ts, ys = x_t[:n_sc], t[:n_sc], (None if y is None else y[:n_sc])
            net = model if cfg.shortcut_targets == "online" else ema
            s1 = net(xs, ts, h_in, depth=depth, y=ys)
            s2 = net(xs - h[:, None, None, None] * s1, ts - h, h_in, depth=depth, y=ys)
            target = torch.cat([(s1 + s2) / 2, target[n_sc:]])
        n_len = _split(b, cfg.length_fraction) if depth < full else 0
        if n_len:                                   # the last rows: the EMA network at full depth
            rows = slice(b - n_len, b)
            target[rows] = ema(x_t[rows], t[rows], d[rows], depth=full, y=None if y is None else y[rows])
    pred = model(x_t, t, d, depth=depth, y=y)
    err = (pred - target).square().flatten(1).mean(1)
    n_len = _split(b, cfg.length_fraction) if depth < full else 0
    fm_rows = slice(n_sc, b - n_len)
    parts = {"flow_matching": err[fm_rows].mean().detach() if fm_rows.stop > fm_rows.start else err.new_zeros(()),
             "self_consistency": err[:n_sc].mean().detach() if n_sc else err.new_zeros(()),
             "length_consistency": err[b - n_len:].mean().detach() if n_len else err.new_zeros(()),
             "depth": depth}
    return err.mean(), parts
