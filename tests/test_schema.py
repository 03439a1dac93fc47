"""The blueprint JSON Schema: valid, documented, and accepting the CRM template.

The schema (``schemas/blueprint.schema.json``) is the grammar of the blueprint
language; ``docs/blueprints.md`` is its reference. These tests keep the two in
step (every property name and every enumerated value is documented) and pin a
few refusals to the JSON path an analyst will be pointed at.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, ValidationError

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_PATH = ROOT / "schemas" / "blueprint.schema.json"
DOCS_PATH = ROOT / "docs" / "blueprints.md"
CRM_DIR = ROOT / "blueprints" / "crm"

SECTIONS = ("roles", "entities", "flows", "kpis", "dashboards", "automations")


# --------------------------------------------------------------------------- helpers


class CoreLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 core-schema scalars and no duplicate keys.

    Mirrors the traps the Formflow loader guards against, so this test reads a
    blueprint the way the engine does: ``on``/``yes``/``NO`` stay strings, ``12:30``
    and ``2024-06-01`` stay strings, ``1e3`` is not a float, duplicate keys fail.
    """


CoreLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789")
)
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)


def _construct_mapping(loader: CoreLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


CoreLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def core_load(text: str) -> Any:
    """Parse YAML with :class:`CoreLoader` (a ``SafeLoader``: no Python objects)."""
    return yaml.load(text, Loader=CoreLoader)


def load_yaml(path: Path) -> Any:
    return core_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema)


@pytest.fixture(scope="module")
def fragment_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """Validates a file named in ``include:`` (only the sections, nothing required)."""
    return Draft202012Validator({"$ref": "#/$defs/fragment", "$defs": schema["$defs"]})


@pytest.fixture(scope="module")
def docs_keys() -> set[str]:
    text = DOCS_PATH.read_text(encoding="utf-8")
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)  # drop fenced blocks
    return set(re.findall(r"`([^`\n]+)`", text))


def walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema (dict) of ``node`` with its JSON pointer, depth first."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}/{i}")


def property_names(schema: dict[str, Any]) -> dict[str, str]:
    """Property name -> first place it is defined, over the whole schema.

    Covers ``properties`` wherever they are: top level, ``$defs``, ``if``/``then``/
    ``else``, ``items``, ``additionalProperties``, ``anyOf``/``oneOf``/``allOf``.
    """
    names: dict[str, str] = {}
    for path, node in walk(schema):
        props = node.get("properties")
        if isinstance(props, dict) and not path.endswith("/properties"):
            for name in props:
                names.setdefault(name, f"{path}/properties/{name}")
    return names


def enum_values(schema: dict[str, Any]) -> dict[str, str]:
    """Every enumerated value (``enum``, ``examples``, ``x-kinds``, ``x-aliases``)."""
    values: dict[str, str] = {}
    for path, node in walk(schema):
        if "/if/" in path + "/":
            continue
        for keyword in ("enum", "examples", "x-kinds", "x-aliases"):
            listed = node.get(keyword)
            if isinstance(listed, list | dict):
                for value in listed:
                    values.setdefault(str(value), f"{path}/{keyword}")
    return values


def crm() -> dict[str, Any]:
    return load_yaml(CRM_DIR / "blueprint.yaml")


def crm_merged() -> dict[str, Any]:
    """blueprint.yaml with its ``include:`` files merged in (sections only)."""
    merged = crm()
    for rel in merged.get("include", []):
        part = load_yaml(CRM_DIR / rel)
        for section, content in part.items():
            if section == "tests":
                merged.setdefault("tests", []).extend(content)
            else:
                target = merged.setdefault(section, {})
                assert not set(target) & set(content), f"{rel} redefines {section}"
                target.update(content)
    return merged


def errors_of(validator: Draft202012Validator, doc: Any) -> list[ValidationError]:
    return list(validator.iter_errors(doc))


def paths(errors: list[ValidationError]) -> list[list[str | int]]:
    return [list(e.absolute_path) for e in errors]


def minimal(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"formflow": 1, "id": "demo", "title": {"zh": "演示", "en": "Demo"}}
    doc.update(extra)
    return doc


def with_entity(entity: dict[str, Any]) -> dict[str, Any]:
    return minimal(entities={"customer": entity})


# --------------------------------------------------------------------------- the schema


def test_schema_is_valid_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_property_has_a_bilingual_description(schema: dict[str, Any]) -> None:
    missing = []
    for path, node in walk(schema):
        props = node.get("properties")
        if not isinstance(props, dict) or path.endswith("/properties") or "/if" in path:
            continue
        for name, sub in props.items():
            if "x-only-for" in sub:  # a refusal inside if/then, described where defined
                continue
            desc = sub.get("description", "")
            if " / " not in desc:
                missing.append(f"{path}/properties/{name}")
    assert not missing, f"properties without a 'zh / en' description: {missing}"


def test_every_property_is_documented(schema: dict[str, Any], docs_keys: set[str]) -> None:
    names = property_names(schema)
    assert {"formflow", "widgets", "on_delete", "expect_flow", "zh"} <= set(names)
    undocumented = {n: where for n, where in names.items() if n not in docs_keys}
    assert not undocumented, "schema keys missing from docs/blueprints.md as `key`: " + ", ".join(
        f"{n} ({where})" for n, where in sorted(undocumented.items())
    )


def test_every_enumerated_value_is_documented(schema: dict[str, Any], docs_keys: set[str]) -> None:
    undocumented = {v: where for v, where in enum_values(schema).items() if v not in docs_keys}
    assert not undocumented, f"enum values missing from docs as `value`: {undocumented}"


def field_kinds(schema: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The built-in field kinds and the aliases the schema documents."""
    type_schema = schema["$defs"]["field"]["properties"]["type"]
    return type_schema["x-kinds"], type_schema["x-aliases"]


def test_field_aliases_name_real_kinds(schema: dict[str, Any]) -> None:
    kinds, aliases = field_kinds(schema)
    assert len(kinds) == 20
    assert set(aliases.values()) <= set(kinds)
    assert not set(aliases) & set(kinds)
    type_schema = schema["$defs"]["field"]["properties"]["type"]
    assert type_schema["examples"] == kinds + list(aliases)
    child_type = schema["$defs"]["child_field"]["properties"]["type"]
    assert child_type["x-kinds"] == [k for k in kinds if k != "table"]


def test_schema_kinds_match_the_field_registry(schema: dict[str, Any]) -> None:
    """Every built-in kind registered in engine.fields is documented with its aliases."""
    registry = pytest.importorskip("engine.fields.registry")
    fields_dir = ROOT / "engine" / "fields"
    for module in sorted(fields_dir.glob("*.py")):
        if module.stem not in ("__init__", "base", "registry", "patterns"):
            importlib.import_module(f"engine.fields.{module.stem}")
    kinds, aliases = field_kinds(schema)
    registered = registry.kinds()
    for kind in registered:
        assert kind.name in kinds, f"kind {kind.name!r} is not in the schema's x-kinds"
        documented = {a for a, k in aliases.items() if k == kind.name}
        assert set(kind.aliases) == documented, kind.name


def docs_yaml_examples() -> list[tuple[int, str]]:
    """Fenced ```yaml blocks of the docs, with their line numbers."""
    text = DOCS_PATH.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^```yaml\n(.*?)^```", text, flags=re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        body = match.group(1).replace("{...}", "{}").replace("[...]", "[]")
        blocks.append((line, body))
    return blocks


def test_docs_examples_are_valid(
    schema: dict[str, Any],
    validator: Draft202012Validator,
    fragment_validator: Draft202012Validator,
) -> None:
    """Every docs example that is a whole blueprint or whole sections validates."""
    sections = set(schema["$defs"]["fragment"]["properties"])
    checked = 0
    for line, body in docs_yaml_examples():
        doc = core_load(body)
        if not isinstance(doc, dict):
            continue
        if "extends" in doc:
            continue  # an overlay is only complete once merged onto its base
        if "formflow" in doc:
            check = validator
        elif set(doc) <= sections:
            check = fragment_validator
        else:
            continue  # a snippet of a field or an entity: shown, not checked here
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in check.iter_errors(doc)]
        assert not errors, f"docs/blueprints.md example at line {line}: {errors}"
        checked += 1
    assert checked >= 8


# --------------------------------------------------------------------------- the CRM template


def test_crm_blueprint_is_valid(validator: Draft202012Validator) -> None:
    errors = errors_of(validator, crm())
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_crm_included_files_are_valid_fragments(
    fragment_validator: Draft202012Validator,
) -> None:
    includes = crm()["include"]
    assert includes
    for rel in includes:
        errors = errors_of(fragment_validator, load_yaml(CRM_DIR / rel))
        assert not errors, [f"{rel} {list(e.absolute_path)}: {e.message}" for e in errors]


def test_crm_merged_is_valid(validator: Draft202012Validator) -> None:
    merged = crm_merged()
    assert not errors_of(validator, merged)
    assert {"revenue", "win_rate", "pipeline"} <= set(merged["kpis"])
    assert merged["dashboards"]


def test_crm_uses_every_field_kind_and_key(schema: dict[str, Any]) -> None:
    field_schema = schema["$defs"]["field"]
    kinds = set(field_kinds(schema)[0])
    used_kinds: set[str] = set()
    used_keys: set[str] = set()
    on_delete: set[str] = set()
    option_forms: set[str] = set()

    def visit(fields: dict[str, Any]) -> None:
        for spec in fields.values():
            used_kinds.add(spec["type"])
            used_keys.update(spec)
            if "on_delete" in spec:
                on_delete.add(spec["on_delete"])
            options = spec.get("options")
            if isinstance(options, dict):
                option_forms.add("map")
            elif isinstance(options, list):
                option_forms.update("object" if isinstance(o, dict) else "scalar" for o in options)
            if spec["type"] == "table":
                visit(spec["fields"])

    for entity in crm()["entities"].values():
        visit(entity["fields"])
    assert used_kinds == kinds
    assert used_keys == set(field_schema["properties"])
    assert on_delete == {"restrict", "set_null", "cascade"}
    assert option_forms == {"map", "object", "scalar"}


def test_crm_roles_have_access_everywhere() -> None:
    doc = crm()
    roles = set(doc["roles"])
    assert roles == {"sales_rep", "sales_manager", "finance", "admin"}
    for name, entity in doc["entities"].items():
        assert set(entity["access"]) <= roles, name
        assert "admin" in entity["access"], name


# --------------------------------------------------------------------------- refusals


def test_unknown_top_level_key(validator: Draft202012Validator) -> None:
    errors = errors_of(validator, minimal(entites={}))
    assert paths(errors) == [[]]
    assert errors[0].validator == "additionalProperties"
    assert "entites" in errors[0].message


def test_field_without_type(validator: Draft202012Validator) -> None:
    errors = errors_of(
        validator, with_entity({"label": "客户", "fields": {"name": {"label": "名称"}}})
    )
    assert paths(errors) == [["entities", "customer", "fields", "name"]]
    assert errors[0].validator == "required"
    assert "'type'" in errors[0].message


@pytest.mark.parametrize(
    ("label", "bad_key"),
    [({"zh": "演示", "fr": "Démo"}, "fr"), ({}, None), ({"zh": 1}, "zh"), ("", None)],
)
def test_bad_label(validator: Draft202012Validator, label: Any, bad_key: str | None) -> None:
    errors = errors_of(validator, minimal(title=label))
    expected = ["title"] if bad_key in (None, "fr") else ["title", bad_key]
    assert paths(errors) == [expected]


def test_wrong_access_scope(validator: Draft202012Validator) -> None:
    entity = {
        "label": "客户",
        "fields": {"name": {"type": "text"}},
        "access": {"sales_rep": {"read": "mine", "update": "=owner == CURRENT_USER()"}},
    }
    errors = errors_of(validator, with_entity(entity))
    assert paths(errors) == [["entities", "customer", "access", "sales_rep", "read"]]


def test_key_of_another_kind(validator: Draft202012Validator) -> None:
    entity = {"label": "客户", "fields": {"name": {"type": "text", "options": ["a"]}}}
    errors = errors_of(validator, with_entity(entity))
    assert paths(errors) == [["entities", "customer", "fields", "name", "options"]]
    assert errors[0].schema["x-only-for"] == {"type": ["choice", "multi_choice"]}


def test_unknown_kind_is_left_to_the_loader(validator: Draft202012Validator) -> None:
    """Kinds live in a registry (extensions add some), so membership and "did you mean
    choice?" are the loader's; the schema only refuses what is not a kind name at all."""
    entity = {"label": "客户", "fields": {"level": {"type": "chocie", "options": ["A"]}}}
    assert not errors_of(validator, with_entity(entity))
    entity = {"label": "客户", "fields": {"level": {"type": "Choice!"}}}
    errors = errors_of(validator, with_entity(entity))
    assert paths(errors) == [["entities", "customer", "fields", "level", "type"]]


def test_kind_aliases_are_accepted(validator: Draft202012Validator) -> None:
    fields = {
        "a": {"type": "number", "precision": 2},
        "b": {"type": "currency", "currency": "USD"},
        "c": {"type": "textarea", "max_length": 10},
        "d": {"type": "multichoice", "options": ["x"]},
        "e": {"type": "bool"},
        "f": {"type": "longtext"},
    }
    assert not errors_of(validator, with_entity({"label": "客户", "fields": fields}))


def test_no_nested_table(validator: Draft202012Validator) -> None:
    inner = {"type": "table", "fields": {"x": {"type": "text"}}}
    entity = {"label": "订单", "fields": {"lines": {"type": "table", "fields": {"sub": inner}}}}
    errors = errors_of(validator, with_entity(entity))
    assert ["entities", "customer", "fields", "lines", "fields", "sub", "type"] in paths(errors)


def test_required_kind_keys(validator: Draft202012Validator) -> None:
    fields = {"c": {"type": "choice"}, "r": {"type": "ref"}, "f": {"type": "formula"}}
    errors = errors_of(validator, with_entity({"label": "客户", "fields": fields}))
    assert sorted(e.message for e in errors) == [
        "'formula' is a required property",
        "'options' is a required property",
        "'to' is a required property",
    ]


def test_approvers_need_exactly_one_source(validator: Draft202012Validator) -> None:
    flow = {
        "entity": "contract",
        "status_field": "status",
        "steps": {"review": {"approvers": {"role": "finance", "manager_of": "owner"}}},
    }
    errors = errors_of(validator, minimal(flows={"approval": flow}))
    assert paths(errors) == [["flows", "approval", "steps", "review", "approvers"]]
    assert errors[0].validator == "oneOf"


def test_automation_action_has_one_key(validator: Draft202012Validator) -> None:
    action = {"set": {"a": 1}, "notify": {"to": ["owner"], "message": "hi"}}
    auto = {"entity": "customer", "on": "create", "actions": [action]}
    errors = errors_of(validator, minimal(automations={"a": auto}))
    assert paths(errors) == [["automations", "a", "actions", 0]]
    assert errors[0].validator == "maxProperties"


def test_date_trigger_needs_date_field(validator: Draft202012Validator) -> None:
    auto = {"entity": "x", "on": "date", "offset": "-3d", "actions": [{"set": {"a": 1}}]}
    errors = errors_of(validator, minimal(automations={"a": auto}))
    assert [e.message for e in errors] == ["'date_field' is a required property"]


@pytest.mark.parametrize("value", ["48", "2 days", "-1d", "1.5h"])
def test_bad_duration(validator: Draft202012Validator, value: str) -> None:
    flow = {
        "entity": "contract",
        "status_field": "status",
        "remind_after": value,
        "steps": {"review": {"approvers": {"role": "finance"}}},
    }
    errors = errors_of(validator, minimal(flows={"approval": flow}))
    assert paths(errors) == [["flows", "approval", "remind_after"]]


def test_widget_key_is_kind_not_chart(validator: Draft202012Validator) -> None:
    dash = {"widgets": [{"chart": "bar", "kpi": "revenue"}]}
    errors = errors_of(validator, minimal(dashboards={"overview": dash}))
    assert sorted(e.validator for e in errors) == ["additionalProperties", "required"]
    assert {tuple(p) for p in paths(errors)} == {("dashboards", "overview", "widgets", 0)}


@pytest.mark.parametrize(
    "name", ["1st", "_x", "客户", "customer_2", "a" * 63, "a" * 64, "bad-name", "客户 名"]
)
def test_names(validator: Draft202012Validator, name: str) -> None:
    ok = name in ("客户", "customer_2", "a" * 63)
    errors = errors_of(validator, minimal(roles={name: "x"}))
    assert (not errors) is ok


@pytest.mark.parametrize("path", ["/etc/x.yaml", "../other/x.yaml", "a/../../x.yml", "x.txt"])
def test_include_paths_stay_inside(validator: Draft202012Validator, path: str) -> None:
    assert errors_of(validator, minimal(include=[path]))


def test_limits_in_schema(validator: Draft202012Validator) -> None:
    fields = {f"f{i}": {"type": "text"} for i in range(501)}
    errors = errors_of(validator, with_entity({"label": "x", "fields": fields}))
    assert [e.validator for e in errors] == ["maxProperties"]
    entities = {f"e{i}": {"label": "x", "fields": {"a": {"type": "text"}}} for i in range(201)}
    errors = errors_of(validator, minimal(entities=entities))
    assert [e.validator for e in errors] == ["maxProperties"]


def test_core_loader_keeps_yaml_traps_as_strings() -> None:
    doc = core_load("a: NO\nb: yes\non: 1\nc: 12:30\nd: 1e3\ne: 2024-06-01\nf: true\n")
    assert doc == {
        "a": "NO",
        "b": "yes",
        "on": 1,
        "c": "12:30",
        "d": "1e3",
        "e": "2024-06-01",
        "f": True,
    }
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key"):
        core_load("a: 1\na: 2\n")
