"""Deterministic synthetic storms written in exactly the SEVIR format.

:func:`write_synthetic_sevir` writes ``ROOT/data/vil/<year>/SEVIR_VIL_<KIND>_<year>_<MMDD>_<MMDD>.h5``
files (datasets ``id`` and ``vil``, ``N×H×W×T`` uint8) and ``ROOT/CATALOG.csv`` with all 21
columns, so every code path built for real SEVIR runs on it unchanged.

Each event is a field of vertically integrated liquid (kg m⁻²) encoded with the SEVIR codec:

* convective cells with life cycles (growth, maturity, decay: ``sin(πs)^1.5`` over a lifetime of
  30–150 min), an intense core and a weaker halo, heavy-tailed peak intensities;
* squall lines: chains of elongated cells along a line across the wind;
* stratiform shields: smooth, large, weak precipitation from thresholded red noise;
* multiscale texture: a multiplicative log-normal modulation from power-law noise;
* advection of everything by a smooth, slowly veering wind of 10–30 m/s;
* with ``texture="radar"`` (the default; ``"cells"`` is the smooth first version): the modulation
  is an evolving log-normal cascade (:class:`~.texture.EvolvingNoise`: power-law spectrum, small
  scales decorrelating fast, large ones slowly, in the moving frame) strong enough to make rain
  areas intermittent and cores sharp, the stratiform shields evolve the same way, cells have peaked
  (not Gaussian) cores, propagate on their own relative to the wind, and some split into two cells
  that drift apart (others, drifting together, merge);
* some events with missing pixels (255, radar outage blocks) and ``pct_missing > 0``; some
  duplicated catalog rows (the known SEVIR catalog bug).

Event times spread over 2018–2019 so that every default split (train ≤ 2019-01-01 < val ≤
2019-06-01 < test) gets events. Everything derives from ``seed``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..foundation.files import atomic_write
from ..foundation.tasks import SEVIR_DOMAIN_M
from .codec import MISSING, encode_vil
from .projection import laea_to_lonlat
from .sevir import CATALOG_COLUMNS, SEVIR_PROJ
from .texture import EvolvingNoise

__all__ = ["SyntheticConfig", "generate_event", "value_encoded_event", "write_synthetic_sevir"]

PATCH_M = SEVIR_DOMAIN_M
FRAME_SECONDS = 300.0
EVENT_TYPES = ("Thunderstorm Wind", "Hail", "Heavy Rain", "Flash Flood", "Funnel Cloud")
REGIMES = ("convective", "squall", "stratiform", "light")
TEXTURES = ("radar", "cells")
#: The radar texture's parameters (see :mod:`nowcast.data.texture` and docs/data.md for what they
#: give): log-modulation spectrum and strength, decorrelation time at 16 km and its scaling, cell
#: core sharpness, own-propagation spread, splitting probability.
RADAR_TEXTURE = {"beta": 2.8, "sigma": 0.7, "tau_16km_min": 30.0, "z": 1.0, "shield_beta": 3.5,
                 "shield_tau_16km_min": 90.0, "core_power": 0.5, "drift": 0.25, "split": 0.3}


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic SEVIR set.

    Attributes
    ----------
    n_events : int
        Distinct events.
    size : int
        Grid side (384 as SEVIR; must be divisible by 3 for SEVIR-LR). The patch is always 384 km.
    frames : int
        Frames per event at 5 min (49 as SEVIR).
    seed : int
        Master seed.
    missing_fraction : float
        Fraction of events with missing pixels.
    duplicate_fraction : float
        Fraction of ids given a duplicated catalog row.
    value_encoded : bool
        Write :func:`value_encoded_event` patterns instead of storms (for exact tests); the
        catalog's ``regime`` column then reads ``value-encoded:<index>``.
    texture : {'radar', 'cells'}
        Small-scale structure: ``radar`` (an evolving log-normal cascade, peaked cores, splitting
        cells; the default) or ``cells`` (smooth cells under one shared texture, the first version).
    """

    n_events: int = 16
    size: int = 384
    frames: int = 49
    seed: int = 0
    missing_fraction: float = 0.1
    duplicate_fraction: float = 0.05
    value_encoded: bool = False
    texture: str = "radar"

    def __post_init__(self):
        if self.texture not in TEXTURES:
            raise ValueError(f"texture must be one of {TEXTURES}, got {self.texture!r}")


def value_encoded_event(index: int, size: int, frames: int) -> np.ndarray:
    """``(T, H, W)`` bytes ``2·(index mod 50) + t + y + x`` (clipped to 254): a test pattern whose
    every pixel says which event, frame, row and column it came from."""
    t, y, x = np.meshgrid(np.arange(frames), np.arange(size), np.arange(size), indexing="ij")
    return np.minimum(2 * (index % 50) + t + y + x, 254).astype(np.uint8)


def _power_noise(rng: np.random.Generator, size: int, beta: float) -> np.ndarray:
    """Periodic Gaussian noise with power spectrum ∝ |k|^−β, zero mean, unit variance."""
    f = np.fft.fftfreq(size)
    k = np.hypot(f[:, None], f[None, :])
    k[0, 0] = 1.0 / size
    spec = np.fft.fft2(rng.standard_normal((size, size))) * k ** (-beta / 2)
    spec[0, 0] = 0
    out = np.fft.ifft2(spec).real
    return (out / out.std()).astype(np.float32)


def _shift(field: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """Periodic bilinear shift of a 2-D field by (dy, dx) pixels."""
    iy, ix = math.floor(dy), math.floor(dx)
    fy, fx = dy - iy, dx - ix
    a = np.roll(field, (iy, ix), axis=(0, 1))
    b = np.roll(a, 1, axis=0)
    top = (1 - fx) * a + fx * np.roll(a, 1, axis=1)
    bot = (1 - fx) * b + fx * np.roll(b, 1, axis=1)
    return (1 - fy) * top + fy * bot


def _lifecycle(s: np.ndarray) -> np.ndarray:
    inside = (s > 0) & (s < 1)
    return np.where(inside, np.sin(np.pi * np.clip(s, 0, 1)) ** 1.5, 0.0)


def _cells(rng: np.random.Generator, regime: str, size: int, frames: int, km_px: float) -> list:
    """Cell descriptions: position (px), birth (min), lifetime, peak (kg m⁻²), axes (px), angle."""
    n = {"convective": rng.poisson(14) + 3, "squall": 0, "stratiform": rng.poisson(5),
         "light": rng.poisson(2)}[regime]
    strength = {"convective": 1.0, "squall": 1.2, "stratiform": 0.5, "light": 0.15}[regime]
    duration = frames * 5
    cells = []
    for _ in range(n):
        r = rng.uniform(3, 9) / km_px
        cells.append(dict(y=rng.uniform(0, size), x=rng.uniform(0, size),
                          birth=rng.uniform(-90, duration - 20), life=rng.uniform(30, 150),
                          peak=strength * min(70.0, rng.lognormal(math.log(4.0), 0.9)),
                          a=r, b=r * rng.uniform(0.7, 1.3), angle=rng.uniform(0, np.pi)))
    if regime == "squall":
        cy, cx = rng.uniform(0.2, 0.8, size=2) * size
        along = rng.uniform(0, np.pi)
        length = rng.uniform(120, 300) / km_px
        for t in np.linspace(-0.5, 0.5, int(rng.integers(8, 16))):
            r = rng.uniform(4, 8) / km_px
            cells.append(dict(y=cy + t * length * math.sin(along), x=cx + t * length * math.cos(along),
                              birth=rng.uniform(-60, 30), life=rng.uniform(120, 240),
                              peak=strength * min(70.0, rng.lognormal(math.log(8.0), 0.6)),
                              a=2.5 * r, b=r, angle=along))
    return cells


def _split_cells(rng: np.random.Generator, cells: list, step_px: float) -> None:
    """Give every cell its own propagation and some cells a daughter (in place).

    A cell moves with the wind plus ``drift`` (px per frame, spread ``RADAR_TEXTURE['drift']`` of
    the wind step); with probability ``RADAR_TEXTURE['split']`` a cell splits: a daughter is born at
    the parent's place a third into the parent's life and drifts away from it sideways.
    """
    spread = RADAR_TEXTURE["drift"] * step_px
    for c in cells:
        c["drift"] = rng.normal(0.0, spread, size=2)
    for i in range(len(cells)):
        c = cells[i]
        if rng.uniform() >= RADAR_TEXTURE["split"]:
            continue
        away = rng.uniform(0, 2 * np.pi)
        kick = rng.uniform(0.5, 1.5) * max(spread, 0.3) * np.array([math.sin(away), math.cos(away)])
        cells.append(dict(c, birth=c["birth"] + c["life"] / 3, life=c["life"] * rng.uniform(0.6, 1.0),
                          peak=c["peak"] * rng.uniform(0.5, 1.0), parent=i, drift=c["drift"] + kick,
                          angle=rng.uniform(0, np.pi)))
        c["drift"] = c["drift"] - kick / 2


def _render_cell(field: np.ndarray, c: dict, y: float, x: float, amp: float, core_power: float = 1.0) -> None:
    """Add an elongated core plus a 2.5× halo at (y, x) into ``field`` (periodic): Gaussian with
    ``core_power`` 1, more peaked (``exp(−(q/2)^p)``) below."""
    size = field.shape[0]
    rad = int(math.ceil(4.0 * 2.5 * max(c["a"], c["b"])))
    oy, ox = np.arange(-rad, rad + 1), np.arange(-rad, rad + 1)
    yy = (int(round(y)) + oy) % size
    xx = (int(round(x)) + ox) % size
    dy = (oy + round(y) - y)[:, None]
    dx = (ox + round(x) - x)[None, :]
    ca, sa = math.cos(c["angle"]), math.sin(c["angle"])
    u, v = dx * ca + dy * sa, -dx * sa + dy * ca
    q = (u / c["a"]) ** 2 + (v / c["b"]) ** 2
    if core_power == 1.0:
        core = np.exp(-0.5 * q)
    elif core_power == 0.5:
        core = np.exp(-np.sqrt(0.5 * q))                 # the same, cheaper than a power
    else:
        core = np.exp(-(0.5 * q) ** core_power)
    blob = amp * (core + 0.12 * np.exp(-0.5 * q / 6.25))
    field[np.ix_(yy, xx)] += blob


def generate_event(rng: np.random.Generator, size: int = 384, frames: int = 49,
                   regime: str | None = None, texture: str = "radar") -> tuple:
    """One synthetic VIL event.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    size, frames : int
        Grid side and frame count.
    regime : str, optional
        ``convective``, ``squall``, ``stratiform`` or ``light`` (random by default).
    texture : {'radar', 'cells'}
        Small-scale structure (see the module docstring).

    Returns
    -------
    tuple
        ``(vil, regime)`` with ``vil`` of shape ``(T, H, W)`` in kg m⁻² (float32).
    """
    if texture not in TEXTURES:
        raise ValueError(f"texture must be one of {TEXTURES}, got {texture!r}")
    regime = regime or str(rng.choice(REGIMES, p=[0.4, 0.2, 0.25, 0.15]))
    km_px = PATCH_M / 1000 / size
    speed = rng.uniform(10, 30)                       # m/s
    theta0 = rng.uniform(0, 2 * np.pi)
    veer = math.radians(rng.uniform(-15, 15)) / 60    # rad per minute
    shear = rng.uniform(-0.15, 0.15)                  # relative speed change across the patch
    cells = _cells(rng, regime, size, frames, km_px)
    strat = _power_noise(rng, size, 3.5)
    texture_noise = _power_noise(rng, size, 2.2)
    strat_amp = {"convective": 0.4, "squall": 1.0, "stratiform": 1.8, "light": 0.6}[regime] * rng.uniform(0.5, 1.5)
    strat_thr = rng.uniform(0.0, 1.0)
    radar = texture == "radar"
    core_power = RADAR_TEXTURE["core_power"] if radar else 1.0
    if radar:                                         # drawn after the first version's draws
        p = RADAR_TEXTURE
        tex_field = EvolvingNoise(rng, size, p["beta"], km_px, FRAME_SECONDS / 60, p["tau_16km_min"], 16.0, p["z"])
        shield = EvolvingNoise(rng, size, p["shield_beta"], km_px, FRAME_SECONDS / 60, p["shield_tau_16km_min"],
                               16.0, p["z"])
        _split_cells(rng, cells, speed * FRAME_SECONDS / (km_px * 1000))
    out = np.zeros((frames, size, size), dtype=np.float32)
    pos = np.array([[c["y"], c["x"]] for c in cells]).reshape(-1, 2)
    drift = np.array([c.get("drift", np.zeros(2)) for c in cells]).reshape(-1, 2)
    parent = [c.get("parent") for c in cells]
    disp = np.zeros(2)
    for t in range(frames):
        minutes = 5 * t
        theta = theta0 + veer * minutes
        step_px = speed * (1 + 0.1 * math.sin(minutes / 70)) * FRAME_SECONDS / (km_px * 1000)
        wind = step_px * np.array([math.sin(theta), math.cos(theta)])
        field = np.zeros((size, size), dtype=np.float64)
        envelope = 0.6 + 0.4 * math.sin(math.pi * (t + 1) / (frames + 1))
        s = shield.field() if radar else _shift(strat, disp[0], disp[1])
        field += strat_amp * envelope * np.clip(s - strat_thr, 0, None) / (3 - strat_thr)
        for i, c in enumerate(cells):
            if parent[i] is not None and minutes < c["birth"]:
                pos[i] = pos[parent[i]]                   # a daughter sits in its parent until born
            amp = c["peak"] * _lifecycle((minutes - c["birth"]) / c["life"])
            if amp > 1e-3:
                _render_cell(field, c, pos[i, 0], pos[i, 1], float(amp), core_power)
        if radar:
            sigma = RADAR_TEXTURE["sigma"]
            frame = field * np.exp(sigma * tex_field.field() - sigma ** 2 / 2)
        else:
            frame = field * np.exp(0.35 * _shift(texture_noise, disp[0], disp[1]) - 0.06)
        # below (6 − 2)/90.66 kg m⁻² VIL decodes to 0 anyway: keep clear air at byte 0, as SEVIR
        out[t] = np.where(frame < 4 / 90.66, 0.0, frame)
        # advance: the wind at each cell's height in the patch (shear), then the shields
        if len(pos):
            pos += wind[None, :] * (1 + shear * (pos[:, :1] / size - 0.5)) + drift
        disp += wind
        if radar:
            tex_field.step(*wind)
            shield.step(*wind)
    return out, regime


def _time_for(rng: np.random.Generator, i: int):
    """Event time: cycle train (2018, twice), val (2019-01..05), test (2019-06..12) segments."""
    import pandas as pd

    seg = [("2018-01-01", "2018-12-31"), ("2018-01-01", "2018-12-31"),
           ("2019-01-02", "2019-05-31"), ("2019-06-02", "2019-12-31")][i % 4]
    lo, hi = pd.Timestamp(seg[0]), pd.Timestamp(seg[1])
    t = lo + (hi - lo) * rng.uniform()
    return t.floor("min")


def _event_bytes(args: tuple) -> tuple:
    """Bytes ``(T, H, W)``, regime and the event's generator after drawing (worker-safe)."""
    seed, number, size, frames, value_encoded, texture = args
    erng = np.random.default_rng(seed)
    if value_encoded:
        return value_encoded_event(number, size, frames), f"value-encoded:{number}", erng
    field, regime = generate_event(erng, size, frames, texture=texture)
    return encode_vil(field), regime, erng


def _generated(jobs: list, workers: int):
    if workers <= 1:
        yield from map(_event_bytes, jobs)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_event_bytes, jobs, chunksize=2)


def _plan_events(config: SyntheticConfig) -> tuple:
    """``(files, rng)``: file name → the events it holds (``(file_name, event_id, time, storm, seed,
    index)``), and the generator, which goes on to draw the duplicated catalog rows."""
    rng = np.random.default_rng(config.seed)
    files: dict = {}
    for i in range(config.n_events):
        time = _time_for(rng, i)
        storm = rng.uniform() < 0.6
        kind = "STORMEVENTS" if storm else "RANDOMEVENTS"
        half = "0101_0630" if time.month <= 6 else "0701_1231"
        file_name = f"vil/{time.year}/SEVIR_VIL_{kind}_{time.year}_{half}.h5"
        eid = f"S{800000 + i}" if storm else f"R{time:%y%m%d%H%M}{i:04d}"
        files.setdefault(file_name, []).append((file_name, eid, time, storm, int(rng.integers(2**31)), i))
    return files, rng


def _catalog_row(config: SyntheticConfig, event: tuple, idx: int, data: np.ndarray, regime: str, erng) -> dict:
    """The CATALOG.csv row of one generated event (draws its time shift, place and type from ``erng``)."""
    file_name, eid, time, storm = event[:4]
    offsets_base = 5 * (np.arange(config.frames) - config.frames // 2)
    shift = int(erng.choice([0, 0, 0, -1, 1, -2, 2]))
    x0 = erng.uniform(-1.9e6, 1.9e6)
    y0 = erng.uniform(-1.2e6, 0.8e6)
    lon0, lat0 = laea_to_lonlat(x0 - PATCH_M / 2, y0 - PATCH_M / 2)
    lon1, lat1 = laea_to_lonlat(x0 + PATCH_M / 2, y0 + PATCH_M / 2)
    valid = data[data != MISSING]
    return {
        "id": eid, "file_name": file_name, "file_index": idx, "img_type": "vil",
        "time_utc": time, "minute_offsets": ":".join(str(int(v)) for v in offsets_base + shift),
        "episode_id": float(100000 + idx) if storm else np.nan,
        "event_id": float(int(eid[1:])) if storm else np.nan,
        "event_type": EVENT_TYPES[int(erng.integers(len(EVENT_TYPES)))] if storm else np.nan,
        "llcrnrlat": float(lat0), "llcrnrlon": float(lon0),
        "urcrnrlat": float(lat1), "urcrnrlon": float(lon1), "proj": SEVIR_PROJ,
        "size_x": config.size, "size_y": config.size, "height_m": PATCH_M, "width_m": PATCH_M,
        "data_min": int(valid.min()) if valid.size else MISSING,
        "data_max": int(valid.max()) if valid.size else MISSING,
        "pct_missing": round(100.0 * float((data == MISSING).mean()), 4),
        "regime": regime,
    }


def _write_h5(path: str, config: SyntheticConfig, evs: list, workers: int, rows: list, bar) -> None:
    """Generate the events of one HDF5 file into ``path``, appending their catalog rows."""
    import h5py

    with h5py.File(path, "w") as f:
        ids = f.create_dataset("id", (len(evs),), dtype="S24")
        vil = f.create_dataset("vil", (len(evs), config.size, config.size, config.frames), dtype="uint8",
                               chunks=(1, config.size, config.size, config.frames))
        jobs = [(ev[4], ev[5], config.size, config.frames, config.value_encoded, config.texture) for ev in evs]
        for idx, (ev, (data, regime, erng)) in enumerate(zip(evs, _generated(jobs, workers))):
            if erng.uniform() < config.missing_fraction:
                h0, w0 = erng.integers(0, config.size // 2, size=2)
                hh, ww = erng.integers(config.size // 10, config.size // 3, size=2)
                t0 = int(erng.integers(0, config.frames // 2))
                data[t0:, h0:h0 + hh, w0:w0 + ww] = MISSING
            ids[idx] = ev[1].encode()
            vil[idx] = np.moveaxis(data, 0, -1)
            rows.append(_catalog_row(config, ev, idx, data, regime, erng))
            if bar is not None:
                bar.update(1)


def write_synthetic_sevir(root: str | os.PathLike, config: SyntheticConfig = SyntheticConfig(),
                          progress: bool = False, workers: int = 1):
    """Write a synthetic SEVIR VIL set (HDF5 files + CATALOG.csv) under ``root``.

    Parameters
    ----------
    root : path-like
        Output directory (created); existing files of the same names are replaced.
    config : SyntheticConfig
        What to generate.
    progress : bool
        Show a progress bar.
    workers : int
        Processes generating events in parallel (the files are written by this process).

    Returns
    -------
    pandas.DataFrame
        The catalog written to ``root/CATALOG.csv``.
    """
    import pandas as pd

    root = Path(root)
    if config.size % 3:
        raise ValueError(f"size must be divisible by 3 (SEVIR-LR pools 3×3), got {config.size}")
    files, rng = _plan_events(config)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=config.n_events, desc="synthetic events", unit="event")
    rows: list = []
    written: list = []
    try:
        for file_name, evs in sorted(files.items()):
            path = root / "data" / file_name
            fresh = not path.exists()
            atomic_write(path, lambda tmp: _write_h5(tmp, config, evs, workers, rows, bar), suffix=".h5")
            if fresh:
                written.append(path)
    except BaseException:               # interrupted or failed: no data files without their catalog
        for path in written:
            path.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    cat = pd.DataFrame(rows)
    n_dup = int(round(config.duplicate_fraction * len(cat)))
    if n_dup:
        dup_idx = rng.choice(len(cat), size=n_dup, replace=False)
        cat = pd.concat([cat, cat.iloc[sorted(dup_idx)]], ignore_index=True)
    cat = cat[list(CATALOG_COLUMNS) + ["regime"]]
    root.mkdir(parents=True, exist_ok=True)
    atomic_write(root / "CATALOG.csv", lambda tmp: cat.to_csv(tmp, index=False), suffix=".csv")
    return cat
