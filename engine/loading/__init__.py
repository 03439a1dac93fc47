"""Pieces of blueprint loading; the public entry point is :func:`engine.loader.load`.

One idea per module: ``positions`` (where every value was written), ``limits``
(how big a blueprint may be), ``jsonpos`` (JSON with positions), ``sources``
(files, ``include:`` and ``extends:``), ``merge`` (overlays), ``schema``
(JSON-Schema errors rewritten for analysts), ``build`` (raw document to the
checked model), ``describe`` (naming a place in a message) and
``formula_checks`` (compiling every formula, cycles). The YAML reader is
:mod:`engine.yamlsafe`; the other semantic checks are :mod:`engine.checks`.
"""
