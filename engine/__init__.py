"""Formflow: a self-hosted low-code engine for sales management.

A blueprint (YAML/JSON) flows one way through the engine::

    blueprint files -> engine.loader (schema + semantic checks) -> engine.model
        -> engine.storage -> services (records, flows, kpis, imports)
        -> faces (web, API, CLI)

The public entry points are :func:`engine.loader.load` and the ``formflow``
command (:mod:`engine.cli`).
"""

__version__ = "0.1.0"
