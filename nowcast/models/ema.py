"""Exponential moving average of a module's parameters (LDM's ``LitEma``)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["EMA"]


class EMA(nn.Module):
    """Shadow copies of the floating-point parameters, ``s ← s − (1 − d)(s − p)``.

    The decay warms up as ``d = min(decay, (1 + n)/(10 + n))`` with ``n`` the number of updates.

    Parameters
    ----------
    model : nn.Module
        The module whose parameters are tracked.
    decay : float
        Final decay (PreDiff: 0.9999).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999):
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError("decay must be in [0, 1]")
        self.decay = decay
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        self.shadow = nn.ParameterList(nn.Parameter(p.detach().clone(), requires_grad=False)
                                       for n, p in model.named_parameters() if p.requires_grad)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards the model's current parameters."""
        self.num_updates += 1
        n = float(self.num_updates)
        d = min(self.decay, (1 + n) / (10 + n))
        params = dict(model.named_parameters())
        for name, s in zip(self.names, self.shadow):
            s.sub_((1.0 - d) * (s - params[name].detach()))

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged parameters into ``model``."""
        params = dict(model.named_parameters())
        for name, s in zip(self.names, self.shadow):
            params[name].copy_(s)

    @contextlib.contextmanager
    def swapped(self, model: nn.Module):
        """Use the averaged parameters inside the block, the trained ones again after it."""
        params = dict(model.named_parameters())
        saved = [params[n].detach().clone() for n in self.names]
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, v in zip(self.names, saved):
                    params[name].copy_(v)
