"""Shared fixtures for the solver tests: a deterministic toy ε-model for diffusers comparisons."""

import pytest
import torch


class ToyEps(torch.nn.Module):
    """A smooth, nonlinear, spatially coupled ε-model ``ε(x, t)`` (no training; fixed weights)."""

    def forward(self, x, t, cond=None):
        t = torch.as_tensor(t, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        mix = 0.5 * x + 0.2 * torch.roll(x, 1, dims=-1) - 0.1 * torch.roll(x, 1, dims=-2)
        return torch.tanh(mix) * (1 + t / 1000) + 0.05 * torch.sin(3 * x) * torch.cos(t / 300)


@pytest.fixture
def toy_eps():
    return ToyEps()


@pytest.fixture
def x_T():
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
