"""List queries: filters, search, sort, offset and keyset paging, capped counts.

The list page and ``GET /api/v1/<entity>?...`` parse their query string with
:func:`parse_query_args` into a :class:`Query`; the record service runs it with
:func:`run_query`, passing the permission layer's row scope as an extra WHERE.

Everything here speaks field names; SQL column names (which may be hashes of
Chinese names) stay inside :mod:`engine.storage.schema`. Every value reaches the
database as a bound parameter, coerced by the field's own kind first.

Query string grammar::

    stage=won                       eq (the default operator)
    amount__gte=1000                <field>__<op>
    close_date__between=2026-01-01,2026-03-31   (either end may be empty)
    stage__in=won,lost              (repeat the parameter to add more values)
    notes__blank=1                  (``notes__blank=0`` means not blank)
    tags__contains=vip,new          (multi-choice: holds every listed option)
    q=acme 上海                      search: every term must match a search field
    sort=-amount,name               "-" for descending
    limit=50  offset=0  after=<cursor>

Decisions worth knowing:

* A parameter with an empty value (``stage=``) is ignored, because an HTML GET
  form submits its empty inputs; ask for blanks with ``stage__blank=1``. In the
  Python API, ``eq`` with a blank value means ``blank`` and ``ne`` means ``not_blank``.
* ``ne`` keeps blank rows (``stage != 'won' OR stage IS NULL``), as a person
  reading "stage is not won" expects.
* ``eq`` on text is exact (case-sensitive). Unique text fields have a normalised
  ``__key`` column, but its normaliser lives in the record service, so lists do not
  use it (move ``normalise_unique`` into storage to enable a case-insensitive ``eq``).
* ``contains`` on text is a case-insensitive substring match (``%``, ``_`` and ``\\``
  escaped); on a multi-choice (JSON list) field it means "the list holds every
  given option" (SQLite ``json_each``, PostgreSQL ``jsonb @>``).
* Blank values sort last in both directions, on both databases; ``id`` (in the
  direction of the last key) is always the final tie-breaker.
* Text sorts in the database's collation (byte order on SQLite; on PostgreSQL the
  database's collation, e.g. pinyin order under ``zh_CN.UTF-8``). Keyset paging
  compares with the same collation, so paging is exact either way.
* Paging: ``limit + 1`` rows are fetched to know ``has_more`` without counting.
  ``Page.next_cursor`` (set whenever there is a next page, also under offset
  paging) is urlsafe base64 of JSON ``{"s": sort keys, "k": last row's key values}``
  with typed values (``{"$d": "12.50"}``, ``{"$D": date}``, ``{"$t": datetime}``).
  A cursor made for another sort, or tampered with, is a :class:`QueryError`.
* Counting never scans more than ``count_cap + 1`` rows. Above the cap the page
  reports ``count=count_cap, count_capped=True`` ("10,000+"); for an unfiltered,
  unscoped list on PostgreSQL it reports the planner's row estimate instead
  (``count_is_estimate=True``, "about 1,234,567"). A page that reaches the end of
  the list knows the exact total without a count query.
* A bare date given to a datetime filter means that whole day in the business
  time zone: ``signed_at=2026-03-01`` is ``[00:00, next 00:00)``, ``__lte`` includes
  the day, ``__gt`` starts after it.
* ``hidden`` (the fields a reader may not see, from the permission layer) are not
  selected, not searched, and refused in filters and sorts exactly like unknown
  names, so no error message confirms that they exist.
"""

from __future__ import annotations

from engine.storage.query.args import parse_query_args
from engine.storage.query.base import (
    DEFAULT_COUNT_CAP,
    MAX_CONTAINS_LENGTH,
    MAX_CURSOR_LENGTH,
    MAX_IN_VALUES,
    MAX_LIMIT,
    MAX_SEARCH_TERMS,
    MAX_SORT_KEYS,
    MAX_TERM_LENGTH,
    OPS,
    OPS_BY_STORAGE,
    RESERVED_PARAMS,
    SYSTEM_FIELDS,
    Filter,
    Page,
    Query,
    QueryError,
)
from engine.storage.query.filters import like_escape
from engine.storage.query.paging import order_clauses
from engine.storage.query.run import compile_query, count_query, run_query
from engine.storage.query.search import search_fields, search_terms, where_clause

__all__ = [
    "DEFAULT_COUNT_CAP",
    "MAX_CONTAINS_LENGTH",
    "MAX_CURSOR_LENGTH",
    "MAX_IN_VALUES",
    "MAX_LIMIT",
    "MAX_SEARCH_TERMS",
    "MAX_SORT_KEYS",
    "MAX_TERM_LENGTH",
    "OPS",
    "OPS_BY_STORAGE",
    "RESERVED_PARAMS",
    "SYSTEM_FIELDS",
    "Filter",
    "Page",
    "Query",
    "QueryError",
    "compile_query",
    "count_query",
    "like_escape",
    "order_clauses",
    "parse_query_args",
    "run_query",
    "search_fields",
    "search_terms",
    "where_clause",
]
