"""Importing CSV and XLSX files into any entity (docs/imports.md).

* :mod:`.limits`: the documented limits, :class:`FileRefused`;
* :mod:`.reading`: opening files safely (magic bytes, encodings, zip bombs, XXE),
  streaming their rows;
* :mod:`.mapping`: columns to fields (names, bilingual labels, a mapping file),
  rows to records with child rows;
* :mod:`.report`: row errors and the annotated XLSX report;
* :mod:`.service`: :class:`ImportService` (the chunked, all-or-nothing run);
* :mod:`.jobs`: ``ff_imports`` and background runs.
"""

from engine.imports.jobs import ImportJob, ImportJobs
from engine.imports.limits import DEFAULT_LIMITS, FileRefused, ImportLimits
from engine.imports.mapping import load_mapping_file
from engine.imports.report import RowError
from engine.imports.service import ImportOptions, ImportResult, ImportService, Progress

__all__ = [
    "DEFAULT_LIMITS",
    "FileRefused",
    "ImportJob",
    "ImportJobs",
    "ImportLimits",
    "ImportOptions",
    "ImportResult",
    "ImportService",
    "Progress",
    "RowError",
    "load_mapping_file",
]
