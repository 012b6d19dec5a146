"""SEVIR's projection: spherical Lambert azimuthal equal-area centred at 38°N, 98°W.

Forward and inverse formulas from Snyder (1987), *Map Projections — A Working Manual*, §24
(sphere), with SEVIR's radius 6,370,997 m; no projection library needed.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EARTH_RADIUS", "LAT0", "LON0", "lonlat_to_laea", "laea_to_lonlat", "CF_GRID_MAPPING"]

EARTH_RADIUS = 6370997.0
LAT0, LON0 = 38.0, -98.0
#: CF grid-mapping attributes of the SEVIR projection.
CF_GRID_MAPPING = {
    "grid_mapping_name": "lambert_azimuthal_equal_area",
    "latitude_of_projection_origin": LAT0,
    "longitude_of_projection_origin": LON0,
    "false_easting": 0.0,
    "false_northing": 0.0,
    "earth_radius": EARTH_RADIUS,
    "proj4": "+proj=laea +lat_0=38 +lon_0=-98 +units=m +a=6370997.0 +ellps=sphere",
}


def lonlat_to_laea(lon, lat):
    """Longitude/latitude (degrees) to SEVIR LAEA x/y (metres)."""
    lam, phi = np.radians(np.asarray(lon, dtype=np.float64)), np.radians(np.asarray(lat, dtype=np.float64))
    phi0, lam0 = math.radians(LAT0), math.radians(LON0)
    k = np.sqrt(2 / (1 + math.sin(phi0) * np.sin(phi) + math.cos(phi0) * np.cos(phi) * np.cos(lam - lam0)))
    x = EARTH_RADIUS * k * np.cos(phi) * np.sin(lam - lam0)
    y = EARTH_RADIUS * k * (math.cos(phi0) * np.sin(phi) - math.sin(phi0) * np.cos(phi) * np.cos(lam - lam0))
    return x, y


def laea_to_lonlat(x, y):
    """SEVIR LAEA x/y (metres) to longitude/latitude (degrees)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    phi0, lam0 = math.radians(LAT0), math.radians(LON0)
    rho = np.hypot(x, y)
    c = 2 * np.arcsin(np.clip(rho / (2 * EARTH_RADIUS), -1, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        lat = np.arcsin(np.cos(c) * math.sin(phi0) + np.where(rho > 0, y * np.sin(c) * math.cos(phi0) / rho, 0))
        lon = lam0 + np.arctan2(x * np.sin(c), rho * math.cos(phi0) * np.cos(c) - y * math.sin(phi0) * np.sin(c))
    return np.degrees(lon), np.degrees(lat)
