"""A small blueprint with a file field that takes any type, and its app (CSRF on or off)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from test_web_support import make_app

BLUEPRINT = """
formflow: 1
id: vault
title: {zh: 文件柜, en: Vault}
entities:
  doc:
    label: {zh: 文档, en: Document}
    title_field: name
    fields:
      name: {type: text, label: {zh: 名称, en: Name}, required: true}
      file: {type: file, label: {zh: 文件, en: File}}
"""
USERS = [("admin", ["admin"]), ("alice", ["admin"])]


def vault_app(tmp_path: Path, db_url: str, **config: Any) -> Flask:
    folder = tmp_path / "vault"
    folder.mkdir(exist_ok=True)
    (folder / "blueprint.yaml").write_text(BLUEPRINT, encoding="utf-8")
    return make_app(folder, db_url, USERS, FORMFLOW_UPLOAD_DIR=str(tmp_path / "uploads"), **config)
