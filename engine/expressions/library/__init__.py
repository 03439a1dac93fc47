"""The built-in formula functions, one module per family.

Importing this package registers them all in :data:`..functions.FUNCTIONS`
through the same :func:`..functions.register_function` an extension uses.
"""

from . import aggregates, dates, logic, lookup, math, text, world

__all__ = ["aggregates", "dates", "logic", "lookup", "math", "text", "world"]
