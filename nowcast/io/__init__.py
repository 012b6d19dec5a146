"""netCDF event files in (``event.nc``) and forecast files out (``forecast.nc``); CF, validation."""

from .conform import conform_event
from .events import EventError, event_dataset, event_from_store, read_event, write_event, write_netcdf
from .forecast import forecast_dataset
from .quantities import from_vil_bytes

__all__ = ["conform_event", "EventError", "event_dataset", "event_from_store", "read_event", "write_event",
           "write_netcdf", "forecast_dataset", "from_vil_bytes"]
