"""The documented limits of an import, and the error that refuses a whole file.

Every limit is checked as early as it can be: the zip directory of an XLSX file
before anything is inflated, the header row before any data row, a line before
it is parsed. The defaults (``docs/imports.md`` quotes them) fit a sales team's
spreadsheets with room to spare; :class:`ImportLimits` takes others.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ImportFailed
from engine.i18n import Text

__all__ = ["DEFAULT_LIMITS", "FileRefused", "ImportLimits"]

MB = 1024 * 1024


@dataclass(frozen=True)
class ImportLimits:
    """What an import accepts; a file over any limit is refused with a message."""

    #: Columns of a sheet (the header row is refused beyond this).
    max_columns: int = 200
    #: Characters in one cell (Excel's own limit).
    max_cell_chars: int = 32_767
    #: Data rows per sheet (records and child rows), blank rows not counted.
    max_rows: int = 1_000_000
    #: Sheets in a workbook.
    max_sheets: int = 50
    #: Entries in an XLSX zip archive.
    max_zip_entries: int = 10_000
    #: Inflated size of one XLSX entry, and of all entries together.
    max_entry_bytes: int = 1024 * MB
    max_total_bytes: int = 2048 * MB
    #: Inflated size / compressed size of one XLSX entry (zip bombs reach thousands).
    max_ratio: int = 200
    #: Rows per create_many call (and per transaction savepoint): as many as the
    #: record service prepares at a time (``records.PREPARE_SLICE``); smaller
    #: chunks pay the per-chunk queries more often (measured: 2,000 was 6-8 % slower).
    chunk_size: int = 4096
    #: Row errors kept in a result (the rest are counted).
    max_errors: int = 10_000

    @property
    def max_line_bytes(self) -> int:
        """The longest CSV line read before it is refused (a line without an end)."""
        return self.max_columns * (self.max_cell_chars * 4 + 3)


DEFAULT_LIMITS = ImportLimits()


class FileRefused(ImportFailed):
    """The file cannot be imported at all (format, encoding, size, shape)."""

    def __init__(self, message: Text, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
