"""Write the sample event as a national radar composite would have it, for the worked example of
docs/own-radar-data.md:

* rain rate in mm h-1 (the codec's Z-R conversion), float32 with a _FillValue;
* on a 1-km grid of the USGS Albers equal-area conic projection (NAD83), 500 × 500 km, rows north first;
* every 5 minutes (frames in between interpolated in time, as a faster radar would see them);
* no data (NaN) outside a 230-km radar range around the domain's centre.

    python docs/examples/national_composite.py data/sample_event.nc composite.nc
"""

import sys

import numpy as np
import pyproj
import xarray as xr
from scipy.ndimage import map_coordinates

from nowcast.io.quantities import to_quantity

ALBERS = {"grid_mapping_name": "albers_conical_equal_area", "standard_parallel": [29.5, 45.5],
          "longitude_of_central_meridian": -96.0, "latitude_of_projection_origin": 23.0,
          "false_easting": 0.0, "false_northing": 0.0, "semi_major_axis": 6378137.0,
          "inverse_flattening": 298.257222101}


def main(src: str, out: str) -> None:
    ev = xr.open_dataset(src)
    sevir = pyproj.CRS.from_cf(dict(ev.crs.attrs))
    albers = pyproj.CRS.from_cf(ALBERS)
    # the Albers grid over the event's centre
    cx, cy = pyproj.Transformer.from_crs(sevir, albers, always_xy=True).transform(float(ev.x.mean()),
                                                                                  float(ev.y.mean()))
    x = cx - 250e3 + (np.arange(500) + 0.5) * 1e3
    y = cy + 250e3 - (np.arange(500) + 0.5) * 1e3
    gx, gy = np.meshgrid(x, y)
    sx, sy = pyproj.Transformer.from_crs(albers, sevir, always_xy=True).transform(gx, gy)
    fi = (sy - float(ev.y[0])) / float(ev.y[1] - ev.y[0])
    fj = (sx - float(ev.x[0])) / float(ev.x[1] - ev.x[0])
    rate = to_quantity(ev.vil.values, "rain_rate")                 # mm/h, NaN where missing
    frames = np.stack([map_coordinates(np.nan_to_num(r), [fi, fj], order=1) for r in rate])
    # 5-min frames: the 10-min ones and their time means in between
    five = np.empty((2 * len(frames) - 1, *frames.shape[1:]), np.float32)
    five[0::2], five[1::2] = frames, (frames[:-1] + frames[1:]) / 2
    times = ev.time.values[0] + np.arange(len(five)) * np.timedelta64(5, "m")
    five[:, np.hypot(gx - cx, gy - cy) > 230e3] = np.nan             # outside the radar's range
    ds = xr.Dataset({"rainrate": (("time", "y", "x"), five, {"units": "mm h-1", "standard_name": "rainfall_rate",
                                                              "long_name": "radar rain rate", "grid_mapping": "crs"}),
                     "crs": ((), np.int32(0), ALBERS)},
                    coords={"time": ("time", times),
                            "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m"}),
                            "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"})},
                    attrs={"Conventions": "CF-1.8", "title": "national-composite-style rain rates (example)"})
    ds.to_netcdf(out, encoding={"rainrate": {"_FillValue": -999.0, "zlib": True}})
    print(f"wrote {out}: {ds.rainrate.shape} rain rates on a 1-km Albers grid, every 5 min")


if __name__ == "__main__":
    main(*sys.argv[1:3])
