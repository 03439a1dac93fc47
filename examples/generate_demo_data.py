"""Generate realistic CRM demo data as CSV files that ``formflow import`` takes as they are.

生成可直接用 ``formflow import`` 导入 CRM 模板的演示数据（CSV）：客户、商机、合同。
同样的参数和 --seed 总是生成同样的文件。

Writes ``customer.csv``, ``opportunity.csv`` and ``contract.csv`` into OUT (import them in
that order: opportunities name their customer, contracts their customer and opportunity,
by title). The same arguments and ``--seed`` always give the same files::

    python examples/generate_demo_data.py --customers 200 --seed 7 --owners li,zhao out/
    formflow import blueprints/crm customer out/customer.csv
    formflow import blueprints/crm opportunity out/opportunity.csv
    formflow import blueprints/crm contract out/contract.csv

Contracts are drafts (their approval flow signs them). With ``--owners`` every record gets
one of those users as its owner (they must exist: ``formflow user add``).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import random
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

CITIES = [
    "上海",
    "北京",
    "深圳",
    "杭州",
    "苏州",
    "南京",
    "成都",
    "武汉",
    "广州",
    "宁波",
    "青岛",
    "西安",
]
WORDS = [
    "恒达",
    "新创",
    "华信",
    "远航",
    "中科",
    "嘉禾",
    "联众",
    "瑞丰",
    "鼎盛",
    "天成",
    "博远",
    "金石",
]
TRADES = {
    "manufacturing": ["机电", "精密制造", "汽车零部件", "装备"],
    "retail": ["商贸", "连锁超市", "电子商务"],
    "finance": ["融资租赁", "保险代理", "投资"],
    "it": ["软件", "信息技术", "数据服务", "网络科技"],
    "other": ["物流", "医疗器械", "教育科技"],
}
FORMS = ["有限公司", "股份有限公司", "集团有限公司"]
SEGMENTS = ["大型企业", "中小企业", "政府机构", "个人客户"]
PRODUCTS = ["数控机床", "工业机器人", "MES 系统", "仓储管理系统", "CRM 实施服务", "年度维保"]
#: stage → share of opportunities; later stages are rarer, like a real funnel
STAGES = {"lead": 25, "needs": 20, "proposal": 18, "contract": 10, "won": 17, "lost": 10}
WIN_REASONS = ["价格合适", "方案最贴合需求", "老客户复购", "交付周期短"]


def _customers(rng: random.Random, count: int, owners: Sequence[str]) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    names: set[str] = set()
    while len(rows) < count:
        industry = rng.choice(list(TRADES))
        name = rng.choice(CITIES) + rng.choice(WORDS) + rng.choice(TRADES[industry])
        name += rng.choice(FORMS)
        if name in names:
            name = f"{name}（{len(rows) + 1}）"
        names.add(name)
        level = rng.choices(["A", "B", "C"], weights=[15, 45, 40])[0]
        revenue = (
            rng.randrange(1_000_000, 500_000_000, 100_000)
            if level == "A"
            else rng.randrange(100_000, 50_000_000, 10_000)
        )
        row = {
            "name": name,
            "level": level,
            "industry": industry,
            "segment": rng.choice(SEGMENTS),
            "annual_revenue": str(revenue),
            "employees": str(rng.randrange(10, 5000)),
            "email": f"contact{len(rows) + 1}@customer{len(rows) + 1}.example.com",
            "phone": f"+86 21 {rng.randrange(1000_0000, 9999_9999)}",
        }
        if owners:
            row["owner"] = rng.choice(owners)
        rows.append(row)
    return rows


def _opportunities(
    rng: random.Random, customers: list[dict[str, str]], as_of: datetime.date
) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for customer in customers:
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            stage = rng.choices(list(STAGES), weights=list(STAGES.values()))[0]
            closed = stage in ("won", "lost")
            offset = -rng.randrange(1, 180) if closed else rng.randrange(7, 180)
            amount = Decimal(rng.randrange(20_000, 2_000_000, 1_000))
            row = {
                "name": f"{customer['name']} {rng.choice(PRODUCTS)} 项目 {len(rows) + 1}",
                "customer": customer["name"],
                "stage": stage,
                "amount": f"{amount:.2f}",
                "close_date": (as_of + datetime.timedelta(days=offset)).isoformat(),
                "win_reason": rng.choice(WIN_REASONS) if stage == "won" else "",
            }
            if "owner" in customer:
                row["owner"] = customer["owner"]
            rows.append(row)
    return rows


def _contracts(
    rng: random.Random, opportunities: list[dict[str, str]], as_of: datetime.date
) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for deal in opportunities:
        if deal["stage"] not in ("contract", "won"):
            continue
        start = min(datetime.date.fromisoformat(deal["close_date"]), as_of)
        row = {
            "subject": f"{deal['name']} 合同",
            "customer": deal["customer"],
            "opportunity": deal["name"],
            "total": deal["amount"],
            "payment_terms": rng.choice(["prepaid", "net30", "net60", "installments"]),
            "start_date": start.isoformat(),
            "end_date": (start + datetime.timedelta(days=rng.choice([180, 365, 730]))).isoformat(),
        }
        if "owner" in deal:
            row["owner"] = deal["owner"]
        rows.append(row)
    return rows


def _write(path: Path, rows: list[dict[str, str]], header: list[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder for the CSV files (created)")
    parser.add_argument("--customers", type=int, default=100, help="how many customers (100)")
    parser.add_argument("--seed", type=int, default=1, help="the random seed (1)")
    parser.add_argument(
        "--as-of",
        type=datetime.date.fromisoformat,
        default=datetime.date.today(),
        help=(
            "closed deals end before this day, open ones after it; the CRM refuses open"
            " deals closing in the past, so import on or before it (default: today)"
        ),
    )
    parser.add_argument("--owners", default="", help="comma-separated user names to own records")
    args = parser.parse_args(argv)
    if args.customers < 1:
        parser.error("--customers must be at least 1")
    rng = random.Random(args.seed)
    owners = [name.strip() for name in args.owners.split(",") if name.strip()]
    customers = _customers(rng, args.customers, owners)
    deals = _opportunities(rng, customers, args.as_of)
    contracts = _contracts(rng, deals, args.as_of)
    owner = ["owner"] if owners else []
    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "customer.csv", customers, [*customers[0].keys()])
    _write(
        args.out / "opportunity.csv",
        deals,
        ["name", "customer", "stage", "amount", "close_date", "win_reason", *owner],
    )
    _write(
        args.out / "contract.csv",
        contracts,
        [
            "subject",
            "customer",
            "opportunity",
            "total",
            "payment_terms",
            "start_date",
            "end_date",
            *owner,
        ],
    )
    print(
        f"{len(customers)} customers, {len(deals)} opportunities, {len(contracts)} contracts "
        f"in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
