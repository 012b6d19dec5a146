"""Where a model runs: ``auto``, ``cpu`` or ``cuda`` to a device name."""

from __future__ import annotations

__all__ = ["resolve_device"]

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> str:
    """``'cuda'`` or ``'cpu'`` for a device choice (``auto`` takes CUDA when it is available).

    Raises
    ------
    ValueError
        For an unknown choice, or ``cuda`` on a machine without a CUDA device.
    """
    if name not in DEVICES:
        raise ValueError(f"--device {name}: choose one of {', '.join(DEVICES)}")
    if name == "cpu":
        return "cpu"
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return "cuda" if torch.cuda.is_available() else "cpu"
