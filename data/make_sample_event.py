"""Write ``data/sample_event.nc``: seven 10-min frames of a synthetic squall line on the SEVIR-LR grid.

The event is test-split event ``S800143`` of the cached synthetic SEVIR-LR store (480 events, seed 0;
built by ``nowcast.data.synthetic_store.synthetic_store`` on first use), frames 6–12, with SEVIR's LAEA
coordinates from its catalog corner (31.84°N, 95.12°W: East Texas and Louisiana)::

    python data/make_sample_event.py
"""

from pathlib import Path

from nowcast.data.synthetic_store import synthetic_store
from nowcast.data.store import open_store
from nowcast.io import event_from_store, write_event

EVENT, FIRST = "S800143", 6


def main() -> None:
    ds = open_store(synthetic_store())
    ids = [str(i) for i in ds["id"].values]
    ev = event_from_store(ds, ids.index(EVENT)).isel(time=slice(FIRST, FIRST + 7))
    ev.attrs["comment"] = ("synthetic storms (nowcast.data.synthetic, 480 events, seed 0) on the SEVIR-LR grid; "
                           f"test-split event {EVENT}, frames {FIRST}-{FIRST + 6}")
    out = Path(__file__).resolve().parent / "sample_event.nc"
    write_event(ev, out, overwrite=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
