"""The foundation every layer may use; it imports nothing of the package and needs no torch to import.

* :mod:`.files` — atomic writes (a reader never sees a half-written file);
* :mod:`.provenance` — commit, machine, file digests: what produced an output;
* :mod:`.device` — ``auto`` / ``cpu`` / ``cuda`` to a device name, with one clear error;
* :mod:`.cache` — the package's cache directory;
* :mod:`.registry` — name lookup with one clear error listing the choices;
* :mod:`.config` — the plain-dict round trip of frozen configuration dataclasses;
* :mod:`.tasks` — the task presets and the SEVIR constants;
* :mod:`.cli` — what every command-line interface shares (help layout, bad-input exit status).
"""

from .cache import cache_dir
from .config import DictRoundTrip
from .device import resolve_device
from .files import atomic_save, atomic_write, atomic_write_text
from .provenance import file_digest, git_commit, machine, machine_summary, run_provenance
from .registry import lookup
from .tasks import MISSING, SEVIR_DOMAIN_M, SEVIR_THRESHOLDS, TASKS, Grid, Task, get_task

__all__ = ["cache_dir", "DictRoundTrip", "resolve_device", "atomic_save", "atomic_write", "atomic_write_text",
           "file_digest", "git_commit", "machine", "machine_summary", "run_provenance", "lookup", "MISSING",
           "SEVIR_DOMAIN_M", "SEVIR_THRESHOLDS", "TASKS", "Grid", "Task", "get_task"]
