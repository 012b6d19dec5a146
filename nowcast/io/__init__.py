"""netCDF event files in (``event.nc``) and, later, forecast files out; CF conventions, validation."""

from .events import EventError, event_dataset, event_from_store, read_event, write_event

__all__ = ["EventError", "event_dataset", "event_from_store", "read_event", "write_event"]
