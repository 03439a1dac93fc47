"""Shared set-up of the flow UI and API tests: the CRM app with two teams and two finance users.

The reporting line is the demo's: 周敏 (zhou.min) directs 王芳 (wang.fang) and
赵强 (zhao.qiang); 李雷 (li.lei) and 韩梅梅 (han.meimei) report to 王芳, 陈静
(chen.jing) to 赵强. fin.a and fin.b are the two finance users of the contract
flow's 会签. Records are written through the record service as their owners.
"""

from __future__ import annotations

import io
from itertools import count
from typing import Any

from flask import Flask
from test_web_support import CRM, make_app

from engine.records import SYSTEM, Actor
from engine.web.services import services

USERS: list[tuple[str, list[str]]] = [
    ("admin", ["admin"]),
    ("zhou.min", ["sales_manager"]),
    ("wang.fang", ["sales_manager"]),
    ("li.lei", ["sales_rep"]),
    ("han.meimei", ["sales_rep"]),
    ("zhao.qiang", ["sales_manager"]),
    ("chen.jing", ["sales_rep"]),
    ("fin.a", ["finance"]),
    ("fin.b", ["finance"]),
]
MANAGERS = {
    "wang.fang": "zhou.min",
    "zhao.qiang": "zhou.min",
    "li.lei": "wang.fang",
    "han.meimei": "wang.fang",
    "chen.jing": "zhao.qiang",
}
DISPLAY = {"li.lei": "李雷", "wang.fang": "王芳", "fin.a": "财务甲", "fin.b": "财务乙"}
_serial = count(1)


def crm_app(db_url: str, **config: Any) -> Flask:
    """The CRM app over a fresh database with the users above."""
    app = make_app(CRM, db_url, USERS, **config)
    with app.app_context():
        users = services().users
        for name, manager in MANAGERS.items():
            users.set_manager(name, manager)
        for name, label in DISPLAY.items():
            users.set_profile(name, display_name=label)
    return app


def actor(app: Flask, name: str) -> Actor:
    with app.app_context():
        return services().users.get(name).actor


def new_contract(app: Flask, owner: str, total: str = "150000", **values: Any) -> int:
    """A draft contract of ``owner`` (with a signed copy unless ``scan=None``)."""
    with app.app_context():
        svc = services()
        rep = svc.users.get(owner).actor
        customer = svc.records.create(
            "customer",
            {"name": f"客户 {next(_serial)} 有限公司", "email": "buy@example.com", "owner": owner},
            actor=SYSTEM,
            via="system",
        )
        data = {
            "subject": "设备采购合同",
            "customer": customer.id,
            "total": total,
            "start_date": "2024-06-01",
            "end_date": "2025-05-31",
            **values,
        }
        if "scan" not in values:  # the rep uploads the signed copy (a file key is theirs)
            data["scan"] = svc.uploads.store(
                "contract", "scan", "contract.pdf", io.BytesIO(b"%PDF-1.4\n"), actor=rep
            ).key
        data = {k: v for k, v in data.items() if v is not None}
        return svc.records.create("contract", data, actor=rep, via="form").id


def new_quote(app: Flask, owner: str, discount: str, price: str = "100000") -> int:
    """A draft quote of ``owner`` on a new opportunity."""
    with app.app_context():
        svc = services()
        rep = svc.users.get(owner).actor
        customer = svc.records.create(
            "customer",
            {"name": f"客户 {next(_serial)} 有限公司", "email": "buy@example.com", "owner": owner},
            actor=SYSTEM,
            via="system",
        )
        opportunity = svc.records.create(
            "opportunity",
            {"name": "设备采购", "customer": customer.id, "amount": price, "owner": owner},
            actor=SYSTEM,
            via="system",
        )
        return svc.records.create(
            "quote",
            {
                "subject": "报价",
                "opportunity": opportunity.id,
                "list_price": price,
                "discount": discount,
            },
            actor=rep,
            via="form",
        ).id


def submit(app: Flask, entity: str, record_id: int, who: str) -> None:
    with app.app_context():
        services().flows.submit(entity, record_id, actor=actor(app, who))


def open_task(app: Flask, entity: str, record_id: int, who: str) -> int:
    """The id of ``who``'s open task on the record."""
    with app.app_context():
        state = services().flows.state(entity, record_id, actor=actor(app, who))
    [task] = state.my_tasks
    return task.id


def values(app: Flask, entity: str, record_id: int) -> dict[str, Any]:
    with app.app_context():
        return dict(services().records.get(entity, record_id).values)


def flow_state(app: Flask, entity: str, record_id: int) -> str:
    with app.app_context():
        return services().flows.state(entity, record_id, actor=SYSTEM).state
