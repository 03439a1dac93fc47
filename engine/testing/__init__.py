"""Blueprint tests: the ``tests:`` cases of a blueprint, run by ``formflow test``.

An analyst pins what a template does - a field error, a computed value, the
path of an approval and who was asked, a KPI value - and runs the cases after
every change. One idea per module:

* :mod:`engine.testing.cases` - finding the cases (``tests:`` and the folder's
  ``tests/*.yaml``), checking them against the blueprint (unknown entity or
  field, with did-you-mean, at file:line:col);
* :mod:`engine.testing.databases` - a throwaway database per case (a SQLite
  file, or a PostgreSQL schema with ``--db``), built through the migrate path;
* :mod:`engine.testing.compare` - comparing an expected value with a stored
  one by the field's kind (money ``"1000"`` equals ``1000.00``);
* :mod:`engine.testing.runner` - running a case through the real services
  (users, records, flows, KPIs of :func:`engine.runtime.build_runtime`);
* :mod:`engine.testing.report` - the pytest-like text and the ``--json`` form.
"""

from engine.testing.cases import Case, Suite, collect
from engine.testing.runner import Mismatch, Outcome, run_case, run_suite

__all__ = ["Case", "Mismatch", "Outcome", "Suite", "collect", "run_case", "run_suite"]
