"""From a radar file's grid to the model's pixels and back.

:func:`plan_grid` lays a grid of the model's pixel size over the file's domain:

* in the file's own projection when it has one (distances are the projection's metres; at radar
  scales every projection national services use is within a few per cent of true distance);
* for a latitude/longitude file, in a Lambert azimuthal equal-area projection centred on the
  domain (pyproj), so that pixels have one area everywhere.

Finer data are **aggregated by the maximum** of the file's pixels whose centres fall in a model
pixel, as SEVIR-LR's frames are made from SEVIR's (max pooling keeps the cores the thresholds
score; an area mean would weaken them and shift every threshold). A model pixel with more than
half of its file pixels missing is missing. Coarser data are **refined** by bilinear interpolation
(missing where the nearest file pixel is missing). A domain smaller than the model's frame is
padded with *no data*; a larger one is covered by overlapping tiles of the model's frame
(:meth:`GridPlan.tile_weights` blends them). :meth:`GridPlan.to_source` brings forecasts back to
the file's pixels by bilinear interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..data.codec import MISSING
from .grids import SourceGrid

__all__ = ["GridPlan", "plan_grid", "bilinear", "tile_origins"]


def tile_origins(n: int, tile: int, overlap: int) -> list:
    """Start indices of tiles of ``tile`` pixels covering ``n`` pixels, neighbours sharing ≥ ``overlap``."""
    if n <= tile:
        return [0]
    k = math.ceil((n - overlap) / (tile - overlap))
    return [int(round(v)) for v in np.linspace(0, n - tile, k)]


def _ramp(origin: int, tile: int, n: int, width: int) -> np.ndarray:
    """Blend weight along one axis: rising over ``width`` pixels from an edge shared with another tile."""
    i = np.arange(tile) + 0.5
    w = np.ones(tile)
    if origin > 0:
        w = np.minimum(w, i / width)
    if origin + tile < n:
        w = np.minimum(w, (tile - i) / width)
    return w


def bilinear(field: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Sample ``field (..., ny, nx)`` at fractional indices (NaN = missing).

    ``fy`` and ``fx`` broadcast to the output's ``(H, W)`` (1-D ``(H, 1)`` / ``(1, W)`` for separable
    grids). Points more than half a pixel outside the field are NaN; where a neighbour is NaN the
    nearest pixel's value is taken (NaN if that one is missing too).
    """
    f = np.asarray(field, dtype=np.float64)
    ny, nx = f.shape[-2:]
    fy, fx = np.broadcast_arrays(np.asarray(fy, np.float64), np.asarray(fx, np.float64))
    fy = np.where(np.abs(fy - np.round(fy)) < 1e-6, np.round(fy), fy)     # exact pixel centres stay exact
    fx = np.where(np.abs(fx - np.round(fx)) < 1e-6, np.round(fx), fx)
    outside = (fy < -0.5) | (fy > ny - 0.5) | (fx < -0.5) | (fx > nx - 0.5)
    cy, cx = np.clip(fy, 0, ny - 1), np.clip(fx, 0, nx - 1)
    y0, x0 = np.minimum(np.floor(cy).astype(int), max(ny - 2, 0)), np.minimum(np.floor(cx).astype(int), max(nx - 2, 0))
    y1, x1 = np.minimum(y0 + 1, ny - 1), np.minimum(x0 + 1, nx - 1)
    wy, wx = cy - y0, cx - x0
    a, b, c, d = f[..., y0, x0], f[..., y0, x1], f[..., y1, x0], f[..., y1, x1]
    out = (a * (1 - wy) * (1 - wx) + b * (1 - wy) * wx + c * wy * (1 - wx) + d * wy * wx)
    bad = np.isnan(out)
    if bad.any():
        near = f[..., np.rint(cy).astype(int), np.rint(cx).astype(int)]
        out = np.where(bad, near, out)
    return np.where(outside, np.nan, out)


@dataclass
class GridPlan:
    """The model-pixel grid over a file's domain and the maps between the two.

    Attributes
    ----------
    source : SourceGrid
        The file's grid.
    x, y : numpy.ndarray
        Model pixel centres (m, increasing) in :attr:`crs_attrs`' projection; at least the model's
        frame in each direction (padded with no data), tiled when larger.
    crs_attrs : dict
        CF grid mapping of the model grid (the file's own, or the local equal-area projection of a
        latitude/longitude file).
    pixel_m : float
        The model's pixel size.
    tile : tuple
        The model's frame ``(H, W)``.
    overlap : int
        Minimum overlap of neighbouring tiles (pixels), also the width of the blend.
    method : str
        ``"max"`` (aggregation of finer data), ``"bilinear"`` (refinement) or ``"same"`` (the file
        is already on the model's grid).
    """

    source: SourceGrid
    x: np.ndarray
    y: np.ndarray
    crs_attrs: dict
    pixel_m: float
    tile: tuple
    overlap: int
    method: str
    covered: tuple = None          # (ny, nx) model pixels the file's domain covers, before padding
    _src_xy: tuple = None          # file pixel centres in model-grid coordinates (2-D, or 1-D when separable)

    @property
    def shape(self) -> tuple:
        """``(ny, nx)`` of the whole model grid."""
        return (len(self.y), len(self.x))

    @property
    def tiles(self) -> list:
        """``(iy, ix)`` origins of the tiles covering the model grid."""
        return [(a, b) for a in tile_origins(len(self.y), self.tile[0], self.overlap)
                for b in tile_origins(len(self.x), self.tile[1], self.overlap)]

    def tile_weights(self, origin: tuple) -> np.ndarray:
        """``(H, W)`` blend weight of the tile at ``origin`` (1 away from shared edges)."""
        ny, nx = self.shape
        return np.outer(_ramp(origin[0], self.tile[0], ny, self.overlap),
                        _ramp(origin[1], self.tile[1], nx, self.overlap))

    def to_model(self, frames: np.ndarray) -> np.ndarray:
        """File frames ``(T, ny, nx)`` VIL bytes (255 = missing) → model-grid bytes ``(T, H, W)``."""
        frames = np.asarray(frames)
        if self.method == "same":
            return self._pad(frames)
        if self.method == "max":
            return self._aggregate(frames)
        f = np.where(frames == MISSING, np.nan, frames.astype(np.float64))
        fy, fx = self._model_in_source()
        out = bilinear(f, fy, fx)
        return np.where(np.isnan(out), MISSING, np.rint(out)).astype(np.uint8)

    def to_source(self, fields: np.ndarray) -> np.ndarray:
        """Model-grid fields ``(..., H, W)`` (float) → the file's pixels ``(..., ny, nx)`` (bilinear)."""
        sx, sy = self._src_xy
        fx = (sx - self.x[0]) / self.pixel_m
        fy = (sy - self.y[0]) / self.pixel_m
        if np.ndim(sx) == 1:
            fy, fx = fy[:, None], fx[None, :]
        return bilinear(fields, fy, fx)

    # -- internals ---------------------------------------------------------------------------------
    def _pad(self, frames):
        sx, sy = self._src_xy
        iy = np.rint((sy - self.y[0]) / self.pixel_m).astype(int)
        ix = np.rint((sx - self.x[0]) / self.pixel_m).astype(int)
        out = np.full((frames.shape[0], *self.shape), MISSING, np.uint8)
        out[:, iy[:, None], ix[None, :]] = frames
        return out

    def _cells(self):
        sx, sy = self._src_xy
        if np.ndim(sx) == 1:
            sx, sy = np.meshgrid(sx, sy)
        ix = np.floor((sx - self.x[0]) / self.pixel_m + 0.5).astype(np.int64)
        iy = np.floor((sy - self.y[0]) / self.pixel_m + 0.5).astype(np.int64)
        ny, nx = self.shape
        ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
        return np.where(ok, iy * nx + ix, -1).ravel()

    def _aggregate(self, frames):
        cell = self._cells()
        keep = np.flatnonzero(cell >= 0)
        order = keep[np.argsort(cell[keep], kind="stable")]
        sorted_cells = cell[order]
        starts = np.flatnonzero(np.r_[True, np.diff(sorted_cells) > 0])
        cells = sorted_cells[starts]
        total = np.diff(np.r_[starts, len(order)])
        out = np.full((frames.shape[0], self.shape[0] * self.shape[1]), MISSING, np.uint8)
        for t, fr in enumerate(frames.reshape(frames.shape[0], -1)):
            v = fr[order]
            miss = np.add.reduceat((v == MISSING).astype(np.int64), starts)
            vmax = np.maximum.reduceat(np.where(v == MISSING, 0, v), starts)
            out[t, cells] = np.where(2 * miss > total, MISSING, vmax)
        return out.reshape(frames.shape[0], *self.shape)

    def _model_in_source(self):
        """Fractional file indices of every model pixel centre."""
        src = self.source
        if not src.lonlat:
            fy = (self.y - src.y[0]) / (src.y[1] - src.y[0])
            fx = (self.x - src.x[0]) / (src.x[1] - src.x[0])
            return fy[:, None], fx[None, :]
        import pyproj

        gx, gy = np.meshgrid(self.x, self.y)
        back = pyproj.Transformer.from_crs(pyproj.CRS.from_wkt(self.crs_attrs["crs_wkt"]), src.crs(), always_xy=True)
        lon, lat = back.transform(gx, gy)
        return (lat - src.y[0]) / (src.y[1] - src.y[0]), (lon - src.x[0]) / (src.x[1] - src.x[0])


def _local_equal_area(src: SourceGrid):
    """A Lambert azimuthal equal-area projection centred on a latitude/longitude domain."""
    import pyproj

    lat0, lon0 = float(np.mean(src.y[[0, -1]])), float(np.mean(src.x[[0, -1]]))
    crs = pyproj.CRS.from_proj4(f"+proj=laea +lat_0={lat0:.4f} +lon_0={lon0:.4f} +datum=WGS84 +units=m")
    attrs = {k: v for k, v in crs.to_cf().items() if not isinstance(v, (list, dict))}
    return crs, attrs


def plan_grid(src: SourceGrid, pixel_m: float, tile: tuple, overlap: int | None = None) -> GridPlan:
    """The model grid over a file's domain (see the module docstring).

    Parameters
    ----------
    src : SourceGrid
        The file's grid.
    pixel_m : float
        The model's pixel size (m).
    tile : tuple
        The model's frame ``(H, W)``.
    overlap : int, optional
        Minimum overlap of tiles in pixels (default: a quarter of the frame).

    Returns
    -------
    GridPlan
    """
    overlap = int(overlap if overlap is not None else max(tile) // 4)
    if src.lonlat:
        import pyproj

        crs, attrs = _local_equal_area(src)
        lon, lat = np.meshgrid(src.x, src.y)
        sx, sy = pyproj.Transformer.from_crs(src.crs(), crs, always_xy=True).transform(lon, lat)
        px = float(np.median(np.hypot(np.diff(sx, axis=1), np.diff(sy, axis=1))))
        py = float(np.median(np.hypot(np.diff(sx, axis=0), np.diff(sy, axis=0))))
    else:
        attrs = dict(src.crs_attrs)
        sx, sy = src.x, src.y
        px, py = float(np.abs(np.diff(src.x)).mean()), float(np.abs(np.diff(src.y)).mean())
    axes, covered = [], []
    for c, p, n_tile in ((sx, px, tile[1]), (sy, py, tile[0])):
        lo, hi = float(np.min(c)) - p / 2, float(np.max(c)) + p / 2
        covered.append(int(math.ceil((hi - lo) / pixel_m - 1e-6)))
        n = max(covered[-1], n_tile)
        lo -= (n * pixel_m - (hi - lo)) / 2                         # pad evenly on both sides
        axes.append(lo + (np.arange(n) + 0.5) * pixel_m)
    x, y = axes
    coarser = max(px, py) >= pixel_m * (1 - 1e-3)
    if not src.lonlat and coarser:
        same = abs(px - pixel_m) < 1e-3 * pixel_m and abs(py - pixel_m) < 1e-3 * pixel_m
        if same:                                                    # align the grid on the file's pixels
            shift_x = (sx[0] - x[0]) / pixel_m
            shift_y = (sy[0] - y[0]) / pixel_m
            x = x + (shift_x - round(shift_x)) * pixel_m
            y = y + (shift_y - round(shift_y)) * pixel_m
        method = "same" if same else "bilinear"
    else:
        method = "bilinear" if coarser else "max"
    return GridPlan(source=src, x=x, y=y, crs_attrs=attrs, pixel_m=float(pixel_m), tile=tuple(tile), overlap=overlap,
                    method=method, covered=(covered[1], covered[0]), _src_xy=(sx, sy))
