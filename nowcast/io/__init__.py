"""netCDF event files in (``event.nc``) and forecast files out (``forecast.nc``); CF, validation, grids."""

from .conform import Conformed, conform_event
from .events import (EventError, event_dataset, event_from_store, read_event, validate_event, write_event,
                     write_netcdf)
from .forecast import forecast_dataset
from .output import default_thresholds, user_forecast
from .quantities import from_vil_bytes

__all__ = ["Conformed", "conform_event", "EventError", "event_dataset", "event_from_store", "read_event",
           "validate_event", "write_event", "write_netcdf", "forecast_dataset", "user_forecast", "default_thresholds", "from_vil_bytes"]
