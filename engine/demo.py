"""Demo data for ``formflow serve --demo``: two sales teams and realistic Chinese records.

Demo only: every demo user's password is ``DEMO_PASSWORD`` (printed at start);
never use ``--demo`` for real data. Records go through the record service
(``via="system"``), so they obey every rule of the blueprint. Entities or fields
a blueprint lacks are skipped, so any blueprint with a ``customer`` entity gets
users at least; the CRM blueprint gets customers, contacts and opportunities.

With the CRM's flows the first screen is alive: contracts and quotes are
submitted through the flow service as their reps, some decided by their
managers, so approvals wait in inboxes (王芳: a contract and a quote; the two
finance users 孙丽 and 钱慧: a contract at the finance 会签; 周敏, the sales
director: a 25% discount), and finished ones show their whole trail. The dashboards
have figures too: contracts signed (approved) in this and the last months, every
rep's monthly targets, and opportunities in every stage, some closed.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from engine.errors import FormflowError
from engine.flows import FlowService
from engine.jobs import JobQueue
from engine.model import Blueprint
from engine.records import SYSTEM, RecordService
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema
from engine.users import UserService

DEMO_PASSWORD = "formflow-demo"

#: (name, display name, roles, manager)
USERS: tuple[tuple[str, str, tuple[str, ...], str | None], ...] = (
    ("admin", "系统管理员", ("admin",), None),
    ("zhou.min", "周敏（销售总监）", ("sales_manager",), None),
    ("wang.fang", "王芳（华东经理）", ("sales_manager",), "zhou.min"),
    ("li.lei", "李雷", ("sales_rep",), "wang.fang"),
    ("han.meimei", "韩梅梅", ("sales_rep",), "wang.fang"),
    ("zhao.qiang", "赵强（华南经理）", ("sales_manager",), "zhou.min"),
    ("chen.jing", "陈静", ("sales_rep",), "zhao.qiang"),
    ("liu.yang", "刘洋", ("sales_rep",), "zhao.qiang"),
    ("sun.li", "孙丽（财务）", ("finance",), None),
    ("qian.hui", "钱慧（财务）", ("finance",), None),  # two finance users: a real 两人会签
)

CUSTOMERS: tuple[dict[str, Any], ...] = (
    {
        "name": "上海华东机电设备有限公司",
        "level": "A",
        "industry": "manufacturing",
        "segment": "大型企业",
        "annual_revenue": "86000000",
        "employees": 1200,
        "phone": "021-6258 8800",
        "owner": "li.lei",
    },
    {
        "name": "杭州云栖信息科技有限公司",
        "level": "B",
        "industry": "it",
        "segment": "中小企业",
        "annual_revenue": "12000000",
        "employees": 150,
        "email": "bd@yunqi.example",
        "owner": "li.lei",
    },
    {
        "name": "苏州工业园区管理委员会",
        "level": "B",
        "industry": "other",
        "segment": "政府机构",
        "phone": "0512-6666 1234",
        "owner": "han.meimei",
    },
    {
        "name": "南京金陵百货股份有限公司",
        "level": "C",
        "industry": "retail",
        "segment": "大型企业",
        "annual_revenue": "30000000",
        "phone": "025-8470 2000",
        "owner": "han.meimei",
    },
    {
        "name": "深圳前海汇通金融服务有限公司",
        "level": "A",
        "industry": "finance",
        "segment": "大型企业",
        "annual_revenue": "250000000",
        "email": "it@huitong.example",
        "owner": "chen.jing",
    },
    {
        "name": "广州白云精密制造有限公司",
        "level": "B",
        "industry": "manufacturing",
        "segment": "中小企业",
        "annual_revenue": "9000000",
        "phone": "020-3622 7788",
        "owner": "chen.jing",
    },
    {
        "name": "东莞松湖电子有限公司",
        "level": "C",
        "industry": "manufacturing",
        "segment": "中小企业",
        "phone": "0769-2288 6600",
        "owner": "liu.yang",
    },
    {
        "name": "厦门鹭岛连锁超市有限公司",
        "level": "C",
        "industry": "retail",
        "segment": "中小企业",
        "email": "purchase@ludao.example",
        "owner": "liu.yang",
    },
)

OPPORTUNITIES: tuple[tuple[int, str, str, str, int, int], ...] = (
    # (customer index, name, stage, amount, days to close, product qty)
    (0, "2027 年度数控机床采购", "proposal", "1850000", 45, 6),
    (0, "产线自动化改造二期", "needs", "3200000", 90, 0),
    (1, "云平台运维服务续约", "contract", "480000", 20, 0),
    (2, "园区智慧安防项目", "lead", "2600000", 120, 0),
    (3, "门店收银系统升级", "won", "360000", 0, 40),
    (4, "核心交易系统灾备建设", "proposal", "5600000", 60, 0),
    (5, "精密检测设备采购", "needs", "920000", 75, 3),
    (6, "SMT 贴片线扩产", "lost", "1500000", 0, 0),
    (7, "供应链管理系统", "lead", "280000", 100, 0),
    (1, "数据中心年度维保服务", "service", "650000", 30, 0),
    (5, "检测设备年度框架协议", "won", "420000", -40, 0),
    (1, "数据中台咨询项目", "won", "760000", -70, 0),
    (6, "车间照明节能改造", "lost", "300000", -20, 0),
    (2, "园区停车管理系统", "contract", "540000", 25, 0),
)

#: Contracts approved earlier (signed in this and the previous months), so the
#: dashboards have revenue to show: (customer index, owner, subject, total,
#: months before this one, day of the month signed).
SIGNED: tuple[tuple[int, str, str, str, int, int], ...] = (
    (0, "li.lei", "机床备件年度供货合同", "420000", 0, 3),
    (1, "li.lei", "云平台运维服务合同（上期）", "310000", 1, 12),
    (0, "li.lei", "自动化改造一期合同", "980000", 2, 20),
    (3, "han.meimei", "门店网络改造合同", "260000", 0, 2),
    (2, "han.meimei", "园区监控维保合同", "180000", 1, 8),
    (4, "chen.jing", "交易系统扩容合同", "1250000", 0, 1),
    (5, "chen.jing", "检测设备采购合同（首批）", "520000", 1, 18),
    (6, "liu.yang", "贴片线维保合同", "150000", 0, 4),
    (7, "liu.yang", "收银终端采购合同", "230000", 2, 9),
    (4, "chen.jing", "灾备演练服务合同", "360000", 3, 15),
)

#: Monthly sales targets per rep (from January of last year to next month).
TARGETS: tuple[tuple[str, str], ...] = (
    ("li.lei", "600000"),
    ("han.meimei", "400000"),
    ("chen.jing", "800000"),
    ("liu.yang", "300000"),
)


#: (customer index, owner, subject, total, who approves after the submit)
CONTRACTS: tuple[tuple[int, str, str, str, tuple[str, ...] | None], ...] = (
    (0, "li.lei", "2027 年度数控机床采购合同", "1850000", ()),  # waits for 王芳
    (2, "han.meimei", "园区智慧安防一期合同", "260000", ("wang.fang",)),  # finance 会签
    (3, "han.meimei", "门店收银系统升级合同", "360000", ("wang.fang", "sun.li", "qian.hui")),
    (4, "chen.jing", "灾备建设咨询服务合同", "45000", ("zhao.qiang",)),  # no finance step
    (7, "liu.yang", "供应链管理系统实施合同", "88000", None),  # a draft, not submitted
)
#: (opportunity name, owner, subject, list price, discount %, who approves after the submit)
QUOTES: tuple[tuple[str, str, str, str, str, tuple[str, ...] | None], ...] = (
    ("2027 年度数控机床采购", "li.lei", "数控机床 6 台报价", "1850000", "15", ()),  # 王芳
    ("核心交易系统灾备建设", "chen.jing", "灾备建设整体报价", "5600000", "25", ("zhao.qiang",)),
    ("园区智慧安防项目", "han.meimei", "智慧安防报价（标准折扣）", "2600000", "8", ()),
)


def _keep(blueprint: Blueprint, entity: str, data: dict[str, Any]) -> dict[str, Any]:
    fields = blueprint.entities[entity].fields
    return {k: v for k, v in data.items() if k in fields or k == "owner"}


def seed_demo(blueprint: Blueprint, engine: Engine) -> list[str]:
    """Create the tables, demo users and records; lines telling how to sign in.

    A template with a ``demo.yaml`` beside its blueprint gets that file's data
    instead (:mod:`engine.demo_data`).
    """
    from engine.demo_data import demo_file, seed_demo_file, signin_lines

    path = demo_file(blueprint)
    if path is not None:
        return signin_lines(seed_demo_file(blueprint, engine, path).users)
    schema = build_schema(blueprint)
    initialise(engine, blueprint, schema)
    users = UserService(blueprint, schema, engine)
    allowed = users.allowed_roles()
    added: list[str] = []
    for name, display, roles, manager in USERS:
        kept = tuple(r for r in roles if r in allowed)
        if not kept:
            continue
        users.add(
            name,
            roles=kept,
            manager=manager if manager in added else None,
            password=DEMO_PASSWORD,
            display_name=display,
        )
        added.append(name)
    records = RecordService(blueprint, schema, engine)
    today = date.today()
    ids: list[int] = []
    if "customer" in blueprint.entities:
        for customer in CUSTOMERS:
            try:
                ids.append(
                    records.create(
                        "customer",
                        _keep(blueprint, "customer", customer),
                        actor=SYSTEM,
                        via="system",
                    ).id
                )
            except FormflowError:
                continue
    opportunities: dict[str, int] = {}
    if "opportunity" in blueprint.entities and ids:
        for index, name, stage, amount, days, qty in OPPORTUNITIES:
            if index >= len(ids):
                continue
            owner = CUSTOMERS[index]["owner"]
            data: dict[str, Any] = {
                "name": name,
                "customer": ids[index],
                "stage": stage,
                "amount": amount,
                "owner": owner,
                "close_date": (today + timedelta(days=days)).isoformat(),
                "is_key": stage in ("proposal", "contract"),
            }
            if stage == "won":
                data["win_reason"] = "价格与交付周期优势"
            if qty:
                data["lines"] = [
                    {"product": "标准设备套件", "qty": qty, "price": str(int(amount) // (qty * 2))}
                ]
            try:
                opportunities[name] = records.create(
                    "opportunity", _keep(blueprint, "opportunity", data), actor=SYSTEM, via="system"
                ).id
            except FormflowError:
                continue
    if blueprint.flows and ids:
        _seed_approvals(blueprint, engine, records, users, ids, opportunities, today)
    _seed_results(blueprint, records, ids, added, today)
    _seed_stage_history(blueprint, records, ids, today)
    names = ", ".join(added)
    return [
        f"演示数据已创建。用户：{names}；密码（仅用于演示）：{DEMO_PASSWORD}",
        f"Demo data created. Users: {names}; password (demo only): {DEMO_PASSWORD}",
    ]


def _month(today: date, back: int) -> date:
    """The first day of the month ``back`` months before today's."""
    index = today.year * 12 + today.month - 1 - back
    return date(index // 12, index % 12 + 1, 1)


def _seed_results(
    blueprint: Blueprint,
    records: RecordService,
    customers: list[int],
    users: list[str],
    today: date,
) -> None:
    """Contracts signed in the last months and the reps' monthly targets (dashboards)."""

    def create(entity: str, data: dict[str, Any]) -> None:
        try:
            records.create(entity, _keep(blueprint, entity, data), actor=SYSTEM, via="system")
        except FormflowError:
            return  # a blueprint without these fields: no demo results

    if "contract" in blueprint.entities:
        for index, owner, subject, total, back, day in SIGNED:
            if index >= len(customers) or owner not in users:
                continue
            first = _month(today, back)
            signed = first.replace(day=min(day, today.day)) if back == 0 else first.replace(day=day)
            create(
                "contract",
                {
                    "subject": subject,
                    "customer": customers[index],
                    "total": total,
                    "payment_terms": "net30",
                    "start_date": signed.isoformat(),
                    "end_date": (signed + timedelta(days=365)).isoformat(),
                    "status": "approved",
                    "signed_on": signed.isoformat(),
                    "owner": owner,
                },
            )
    if "sales_target" in blueprint.entities:
        months = today.month + 12 + 1  # January of last year up to next month
        for rep, amount in TARGETS:
            if rep not in users:
                continue
            for back in range(-1, months - 1):
                start = _month(today, back)
                create(
                    "sales_target",
                    {"rep": rep, "period_start": start, "amount": amount, "owner": rep},
                )


#: Deals walked through their stages (forecast: historical win rates from the audit
#: log): (customer index, name, amount, the stages in order, days to close).
STAGE_HISTORY: tuple[tuple[int, str, str, tuple[str, ...], int], ...] = (
    (0, "机床刀具补货", "150000", ("lead", "needs", "proposal", "contract", "won"), 10),
    (2, "厂区门禁改造", "420000", ("lead", "needs", "proposal", "lost"), 15),
    (4, "网点自助终端", "380000", ("lead", "proposal", "contract", "won"), 12),
    (6, "车间 MES 试点", "260000", ("lead", "needs", "lost"), 20),
    (1, "容器平台咨询", "90000", ("lead", "needs", "proposal", "won"), 8),
    (5, "计量设备校准服务", "120000", ("lead", "needs", "proposal", "contract"), 25),
)


def _seed_stage_history(
    blueprint: Blueprint, records: RecordService, customers: list[int], today: date
) -> None:
    """Deals moved stage by stage through the record service, so the audit log holds
    real stage changes and the forecast's historical win rates have something to show."""
    entity = blueprint.entities.get("opportunity")
    if entity is None or "stage" not in entity.fields or not blueprint.forecasts:
        return
    for index, name, amount, stages, days in STAGE_HISTORY:
        if index >= len(customers):
            continue
        owner = CUSTOMERS[index]["owner"]
        data = {
            "name": name,
            "customer": customers[index],
            "stage": stages[0],
            "amount": amount,
            "owner": owner,
            "close_date": (today + timedelta(days=days)).isoformat(),
        }
        try:
            record = records.create(
                "opportunity", _keep(blueprint, "opportunity", data), actor=SYSTEM, via="system"
            )
            for stage in stages[1:]:
                change: dict[str, Any] = {"stage": stage}
                if stage == "won" and "win_reason" in entity.fields:
                    change["win_reason"] = "方案与交付能力获认可"
                record = records.update(
                    "opportunity",
                    record.id,
                    change,
                    version=record.version,
                    actor=SYSTEM,
                    via="system",
                )
        except FormflowError:
            continue


def _seed_approvals(
    blueprint: Blueprint,
    engine: Engine,
    records: RecordService,
    users: UserService,
    customers: list[int],
    opportunities: dict[str, int],
    today: date,
) -> None:
    """Contracts and quotes submitted (and partly decided) through the flow service."""
    schema = records.schema
    flows = FlowService(blueprint, schema, engine, records, users, jobs=JobQueue(engine, schema))

    def through(entity: str, data: dict[str, Any], owner: str, deciders: Any) -> None:
        try:
            values = _keep(blueprint, entity, {**data, "owner": owner})
            record = records.create(entity, values, actor=SYSTEM, via="system")
            if deciders is None:
                return
            flows.submit(entity, record.id, actor=users.get(owner).actor)
            for name in deciders:
                actor = users.get(name).actor
                [task, *_] = flows.state(entity, record.id, actor=actor).my_tasks
                flows.approve(task.id, actor=actor, comment="同意 / Approved")
        except (FormflowError, ValueError):
            return  # a blueprint without these fields or flows: no demo approvals

    if "contract" in blueprint.entities:
        for index, owner, subject, total, deciders in CONTRACTS:
            if index >= len(customers):
                continue
            contract = {
                "subject": subject,
                "customer": customers[index],
                "total": total,
                "payment_terms": "net30",
                "start_date": today.isoformat(),
                "end_date": (today + timedelta(days=365)).isoformat(),
                "scan": f"demo/contracts/{subject}.pdf",
            }
            through("contract", contract, owner, deciders)
    if "quote" in blueprint.entities:
        for opportunity, owner, subject, price, discount, approvers in QUOTES:
            if opportunity not in opportunities:
                continue
            quote = {
                "subject": subject,
                "opportunity": opportunities[opportunity],
                "list_price": price,
                "discount": discount,
                "valid_until": (today + timedelta(days=30)).isoformat(),
            }
            through("quote", quote, owner, approvers)
