"""A nowcaster over a domain of any size: its frame where the domain fits, overlapping tiles otherwise.

Each tile is forecast on its own (the same seeds for every tile, so member ``m`` of every tile is
drawn from seed ``seed + m``) and the tiles are blended with weights that rise linearly across the
strip they share with a neighbour (:meth:`nowcast.io.regrid.GridPlan.tile_weights`): away from those
strips the result is exactly the tile's own forecast, and across them it changes as smoothly as
the weights. Tiles whose context holds no data at all are not run (their pixels forecast 0).
"""

from __future__ import annotations

import numpy as np

from ..data.codec import MISSING

__all__ = ["predict_domain"]


def predict_domain(nowcaster, frames: np.ndarray, plan, members: int, seed: int = 0, progress: bool = False) -> tuple:
    """Forecast a whole model-grid domain.

    Parameters
    ----------
    nowcaster : Nowcaster
        What forecasts each tile.
    frames : numpy.ndarray
        ``(T, H, W)`` context bytes on the plan's model grid (the last ``task.in_len`` are used).
    plan : nowcast.io.regrid.GridPlan
        The model grid and its tiles.
    members : int
        Ensemble members.
    seed : int
        Member ``m`` uses ``seed + m`` in every tile.
    progress : bool
        Progress bars.

    Returns
    -------
    tuple
        ``((M, n_lead, H, W) bytes, NFE)``: NFE of one tile (the tiles run one after another).
    """
    task = nowcaster.task
    ctx = np.asarray(frames)[-task.in_len:]
    th, tw = plan.tile
    tiles = plan.tiles
    if len(tiles) == 1 and ctx.shape[1:] == (th, tw):
        out, nfe = nowcaster.predict(ctx[None], task.out_len, members, seed, progress=progress)
        return out[0], nfe
    acc, wsum = None, np.zeros(ctx.shape[1:])
    nfe = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tiles), desc=f"tiles of {th}×{tw}", unit="tile")
    for iy, ix in tiles:
        window = ctx[:, iy:iy + th, ix:ix + tw]
        w = plan.tile_weights((iy, ix))
        if not np.all(window == MISSING):           # a tile without data forecasts 0 (adds weight only)
            fc, n = nowcaster.predict(window[None], task.out_len, members, seed, progress=False)
            nfe = max(nfe, int(n))
            if acc is None:
                acc = np.zeros((fc.shape[1], task.out_len, *ctx.shape[1:]))
            acc[:, :, iy:iy + th, ix:ix + tw] += w * fc[0]
        wsum[iy:iy + th, ix:ix + tw] += w
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if acc is None:
        return np.zeros((members, task.out_len, *ctx.shape[1:]), np.uint8), nfe
    return np.clip(np.rint(acc / wsum), 0, 254).astype(np.uint8), nfe
