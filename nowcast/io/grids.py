"""Where a radar file's pixels are: its horizontal coordinates and coordinate reference system.

A radar variable ``(time, Y, X)`` lies on a regular grid of either

* projected coordinates (CF ``projection_x_coordinate`` / ``projection_y_coordinate``, in m or km),
  with a CF grid mapping (``grid_mapping_name`` and its parameters, ``crs_wkt``, GDAL's
  ``spatial_ref`` or a proj string in ``proj4``/``proj4text``/``proj4_params``), or
* latitude/longitude (``degrees_north``/``degrees_east``; a ``latitude_longitude`` grid mapping,
  WGS 84 when there is none).

:func:`source_grid` finds them, or raises an :class:`~.events.EventError`-compatible
:class:`GridError` that says what is missing. The CRS is parsed by pyproj.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["GridError", "SourceGrid", "source_grid", "crs_from_attrs"]

_LON_NAMES, _LAT_NAMES = ("lon", "longitude", "long", "nav_lon"), ("lat", "latitude", "nav_lat")
_METRE_UNITS = {"m": 1.0, "metre": 1.0, "metres": 1.0, "meter": 1.0, "meters": 1.0, "km": 1000.0,
                "kilometre": 1000.0, "kilometres": 1000.0, "kilometer": 1000.0, "kilometers": 1000.0}
_DEGREE_UNITS = ("degrees_east", "degree_east", "degrees_e", "degreese", "degrees_north", "degree_north",
                 "degrees_n", "degreesn", "degrees", "degree", "deg")
_PROJ_ATTRS = ("crs_wkt", "spatial_ref", "proj4", "proj4text", "proj4_params", "proj_string", "proj")


class GridError(ValueError):
    """A file whose horizontal grid cannot be told or is not usable."""


@dataclass(frozen=True)
class SourceGrid:
    """The horizontal grid of a radar file.

    Attributes
    ----------
    x, y : numpy.ndarray
        Pixel-centre coordinates as the file stores them, converted to metres (projected) or
        degrees (latitude/longitude); in the file's order.
    lonlat : bool
        True for a latitude/longitude grid.
    crs_attrs : dict
        The CF grid-mapping attributes (with ``crs_wkt`` added) written back to the forecast.
    dims : tuple of str
        The file's ``(Y, X)`` dimension names.
    coord_attrs : dict
        The file's attributes of its ``Y`` and ``X`` coordinates (by dimension name).
    scale : float
        Factor from metres to the file's coordinate unit (1/1000 for km); 1 for degrees.
    """

    x: np.ndarray
    y: np.ndarray
    lonlat: bool
    crs_attrs: dict
    dims: tuple
    coord_attrs: dict = field(default_factory=dict)
    scale: float = 1.0

    @property
    def shape(self) -> tuple:
        """``(ny, nx)``."""
        return (len(self.y), len(self.x))

    def crs(self):
        """The pyproj CRS."""
        return crs_from_attrs(self.crs_attrs)

    def file_coords(self) -> dict:
        """``{dim: (values as the file stores them, attrs)}`` for writing the forecast on this grid."""
        (ydim, xdim), s = self.dims, (1.0 if self.lonlat else self.scale)
        return {ydim: (self.y * s, self.coord_attrs.get(ydim, {})),
                xdim: (self.x * s, self.coord_attrs.get(xdim, {}))}


def crs_from_attrs(attrs: dict):
    """A pyproj CRS from CF grid-mapping attributes (WKT, proj string or CF parameters).

    Raises
    ------
    GridError
        When none of them describes a CRS pyproj can build.
    """
    import pyproj

    errors = []
    for key in _PROJ_ATTRS:
        if key in attrs and str(attrs[key]).strip():
            try:
                return pyproj.CRS.from_user_input(str(attrs[key]))
            except pyproj.exceptions.CRSError as e:
                errors.append(f"{key}: {e}")
    if "grid_mapping_name" in attrs:
        try:
            return pyproj.CRS.from_cf({k: _plain(v) for k, v in attrs.items()})
        except (pyproj.exceptions.CRSError, KeyError, ValueError, TypeError) as e:
            why = f"missing parameter {e}" if isinstance(e, KeyError) else str(e)    # from_cf's KeyError
            errors.append(f"grid_mapping_name {attrs['grid_mapping_name']!r}: {why}")
    raise GridError("the grid mapping does not describe a projection pyproj can read"
                    + (f" ({'; '.join(errors)})" if errors else " (no grid_mapping_name, crs_wkt or proj string)"))


def _plain(v):
    """netCDF attribute values as pyproj wants them (numpy scalars → float, 1-element arrays unwrapped)."""
    a = np.asarray(v)
    if a.dtype.kind in "iuf":
        return float(a) if a.size == 1 else [float(t) for t in a.ravel()]
    return v


def _kind(name: str, attrs: dict, axis: str) -> tuple | None:
    """``("projected", factor to metres)`` or ``("lonlat", 1)`` from a coordinate's metadata."""
    std = str(attrs.get("standard_name", "")).lower()
    units = str(attrs.get("units", "")).strip().lower()
    if std in ("longitude", "latitude") or units in _DEGREE_UNITS or name.lower() in _LON_NAMES + _LAT_NAMES:
        return ("lonlat", 1.0)
    if units in _METRE_UNITS:
        return ("projected", _METRE_UNITS[units])
    if std.startswith("projection_") or str(attrs.get("axis", "")).upper() == axis or name.lower() == axis.lower():
        if units:
            return None                              # a projected coordinate in an unknown unit
        return ("projected", 1.0)                    # CF requires units; metres when they are missing
    return None


def _regular(values: np.ndarray, dim: str, name: str) -> None:
    d = np.diff(values)
    if len(values) < 2:
        raise GridError(f"{name}: coordinate {dim!r} has {len(values)} value(s); a radar field needs at least 2 "
                        "pixels on each side")
    if not (np.all(d > 0) or np.all(d < 0)):
        raise GridError(f"{name}: coordinate {dim!r} is not strictly monotonic")
    if np.abs(np.abs(d) - np.abs(d).mean()).max() > 0.01 * np.abs(d).mean():
        raise GridError(f"{name}: coordinate {dim!r} is not regularly spaced (steps {np.abs(d).min():g} … "
                        f"{np.abs(d).max():g}); regrid the file to a regular grid first")


def source_grid(ds, var: str, name: str = "file") -> SourceGrid:
    """The horizontal grid of ``ds[var]`` (dimensions ``(time, Y, X)``).

    Parameters
    ----------
    ds : xarray.Dataset
        The opened file.
    var : str
        The radar variable.
    name : str
        What to call the file in messages.

    Returns
    -------
    SourceGrid

    Raises
    ------
    GridError
        Wrong dimensions, missing or irregular coordinates, coordinates in unknown units, a
        projected grid without a grid mapping, or a grid mapping pyproj cannot read.
    """
    da = ds[var]
    if da.ndim != 3 or da.dims[0] != "time":
        raise GridError(f"{name}: {var!r} has dimensions {da.dims}, expected (time, y, x) (or (time, lat, lon))")
    ydim, xdim = da.dims[1:]
    kinds, values, attrs = [], {}, {}
    for dim, axis in ((ydim, "Y"), (xdim, "X")):
        if dim not in ds.coords:
            raise GridError(f"{name}: missing coordinate {dim!r}: give the pixel centres of the {axis} axis, in "
                            "metres (projection_{0}_coordinate) or degrees".format(axis.lower()))
        c = ds[dim]
        k = _kind(dim, c.attrs, axis)
        if k is None:
            raise GridError(f"{name}: coordinate {dim!r} has units {c.attrs.get('units')!r}; expected m or km "
                            "(projected) or degrees_north/degrees_east")
        v = np.asarray(c.values, dtype=np.float64)
        _regular(v, dim, name)
        kinds.append(k)
        values[dim], attrs[dim] = v * k[1], dict(c.attrs)
    if kinds[0][0] != kinds[1][0]:
        raise GridError(f"{name}: coordinates {ydim!r} and {xdim!r} mix degrees and metres")
    lonlat, scale = kinds[0][0] == "lonlat", 1.0 / kinds[0][1]
    gm_name = da.attrs.get("grid_mapping", da.encoding.get("grid_mapping"))
    gm = dict(ds[gm_name].attrs) if gm_name is not None and gm_name in ds.variables else None
    if gm_name is not None and gm is None:
        raise GridError(f"{name}: no CF grid mapping: {var!r} names grid_mapping {gm_name!r}, which the file does "
                        "not have; add that variable with the projection's grid_mapping_name and parameters (or "
                        "crs_wkt)")
    if gm is None:
        gm = {k: ds.attrs[k] for k in _PROJ_ATTRS if k in ds.attrs} or None     # some writers put it globally
    if gm is None:
        if not lonlat:
            raise GridError(f"{name}: no CF grid mapping: {var!r} needs grid_mapping='crs' and a 'crs' variable "
                            "describing the projection (grid_mapping_name and its parameters, or crs_wkt)")
        gm = {"grid_mapping_name": "latitude_longitude", "semi_major_axis": 6378137.0,
              "inverse_flattening": 298.257223563}
    try:
        crs = crs_from_attrs(gm)
    except GridError as e:
        raise GridError(f"{name}: {e}") from None
    if lonlat and not crs.is_geographic:
        raise GridError(f"{name}: coordinates in degrees but the grid mapping is a projection "
                        f"({crs.name}); give projected x/y in metres, or a latitude_longitude grid mapping")
    if not lonlat and crs.is_geographic:
        raise GridError(f"{name}: projected coordinates in metres but the grid mapping is latitude/longitude; "
                        "give the projection's grid mapping")
    gm.setdefault("crs_wkt", crs.to_wkt())
    return SourceGrid(x=values[xdim], y=values[ydim], lonlat=lonlat, crs_attrs=gm, dims=(ydim, xdim),
                      coord_attrs=attrs, scale=scale)
