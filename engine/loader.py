"""Load a blueprint: files -> raw document -> schema check -> model -> semantic checks.

The one entry point is :func:`load`::

    from engine.loader import load
    blueprint = load("blueprints/crm")          # a folder or a .yaml/.yml/.json file

It raises :class:`~engine.errors.BlueprintError` holding *every* problem found,
each at ``file:line:column`` with a bilingual message and a hint, so an analyst
fixes a blueprint in one round instead of one error at a time.
:func:`diagnose` runs the same pipeline but returns a :class:`Report` instead of
raising (``formflow check`` uses it to print warnings and counts).

The pipeline, and where each step lives:

1. read the files, apply ``include:`` and ``extends:`` (:mod:`engine.loading.sources`,
   YAML via :mod:`engine.yamlsafe`, JSON via :mod:`engine.loading.jsonpos`); a
   problem here stops loading, since later steps would only repeat it;
2. size limits of the merged document (:mod:`engine.loading.limits`);
3. JSON-Schema validation, errors rewritten for analysts (:mod:`engine.loading.schema`);
4. build the model (:mod:`engine.loading.build`) - also after schema errors, so
5. the semantic checks (:mod:`engine.checks`) can report more in the same run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from engine.checks import check
from engine.errors import BlueprintError, Problem
from engine.i18n import DEFAULT_LANGUAGE, LANGUAGES, T
from engine.loading import limits, schema, sources
from engine.loading.build import build
from engine.loading.positions import Doc
from engine.model import Blueprint

__all__ = ["Report", "diagnose", "diagnose_document", "load"]


@dataclass(frozen=True)
class Report:
    """What loading found: the model (when it could be built) and every problem."""

    blueprint: Blueprint | None
    problems: tuple[Problem, ...]
    #: The blueprint's ``default_locale`` when the files could be read.
    locale: str | None = None

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity != "error")

    @property
    def ok(self) -> bool:
        return self.blueprint is not None and not self.errors


def diagnose(path: str | os.PathLike[str]) -> Report:
    """Run the whole pipeline on ``path`` and report, never raising BlueprintError."""
    try:
        doc = sources.resolve(Path(path))
    except BlueprintError as exc:
        return Report(None, exc.problems)
    tests_folder = sources.find_main(Path(path)).parent / "tests"
    return diagnose_document(doc, tests_folder=tests_folder)


def diagnose_document(doc: Doc, *, tests_folder: Path | None = None) -> Report:
    """Steps 2-5 of the pipeline on an already merged raw document.

    ``formflow test`` uses it to check a blueprint together with the cases of
    its ``tests/*.yaml`` files, appended to ``tests`` with their own positions.
    ``tests_folder``: where those files are when ``doc`` does not hold them yet
    (only for the warnings about names a test case gets wrong).
    """
    locale = _locale(doc)
    problems = _limit_problems(doc)
    if problems:
        return Report(None, tuple(problems), locale)
    validation = schema.validate(doc)
    problems = list(validation.problems)
    blueprint: Blueprint | None
    try:
        blueprint = build(doc, validation.refused)
        problems += check(blueprint, doc, tolerant=bool(problems))
        if not problems:
            problems += _case_warnings(blueprint, doc, tests_folder)
    except Exception:
        # A document that failed the schema may break the builder or a check in
        # ways not worth guarding against: the schema problems already say why.
        if not problems:
            raise
        blueprint = None
    return Report(blueprint, tuple(_unique(problems)), locale)


def _case_warnings(blueprint: Blueprint, doc: Doc, tests_folder: Path | None) -> list[Problem]:
    """Names in the blueprint's test cases that do not exist, as warnings.

    ``formflow check`` shows them so a typo in a case is found before
    ``formflow test`` (which reports that case as an error); the app still loads.
    """
    from engine.testing.cases import case_warnings

    return case_warnings(blueprint, doc, tests_folder)


def load(path: str | os.PathLike[str], *, lang: str | None = None) -> Blueprint:
    """The checked blueprint at ``path``, or BlueprintError with every problem.

    ``lang`` picks the language of the exception's ``str()`` (default: the
    blueprint's ``default_locale``); each Problem stays bilingual.
    """
    report = diagnose(path)
    if report.ok and report.blueprint is not None:
        return report.blueprint
    error = BlueprintError(report.errors)
    error.args = (error.text.get(lang or report.locale or DEFAULT_LANGUAGE),)
    raise error


def _locale(doc: Doc) -> str:
    """The blueprint's ``default_locale`` (zh when it names none or a bad one)."""
    value = doc.data.get("default_locale") if isinstance(doc.data, dict) else None
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def _limit_problems(doc: Doc) -> list[Problem]:
    problems = []
    for path, rule, size in limits.over_limits(doc.data):
        keys = [str(k) for k in path]
        message = rule.message
        problems.append(
            Problem(
                doc.pos.locate_key(path),
                T(
                    (message.zh or "").format(*keys, limit=rule.limit) + f"（现有 {size} 个）",
                    (message.en or "").format(*keys, limit=rule.limit) + f" (found {size})",
                ),
                rule.hint,
            )
        )
    return problems


def _unique(problems: list[Problem]) -> list[Problem]:
    """Problems without repeats (same place, same message): the first one wins."""
    seen: set[tuple[object, str]] = set()
    out = []
    for problem in problems:
        key = (problem.location, problem.message.get("en"))
        if key not in seen:
            seen.add(key)
            out.append(problem)
    return out
