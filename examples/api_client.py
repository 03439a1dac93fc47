"""Use the Formflow JSON API of the CRM template with nothing but the standard library.

用标准库调用 CRM 模板的 JSON 接口：新建客户、新建商机、推进销售阶段（每次修改都带上
版本号，乐观锁）、赢单，然后读取赢单率和加权商机指标。

Creates a customer and an opportunity, moves the opportunity through the sales stages
(客户开发 → 需求分析 → 方案制定 → 合同签订 → 赢单), each change naming the version it is
based on (optimistic locking), then reads the win-rate and pipeline KPIs.

A token for a user (a sales rep, say) comes from the CLI, printed only once::

    formflow token create li blueprints/crm --label "api example"
    FORMFLOW_TOKEN=ff_... python examples/api_client.py --url http://127.0.0.1:8000

See docs/api.md. Exit status 0 on success, 1 with the server's message on an error.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

STAGES = ["lead", "needs", "proposal", "contract", "won"]


class ApiError(Exception):
    """An answer that was not 2xx: the status and the server's message."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {body.get('error') or body}")
        self.status = status
        self.body = body


class Client:
    """A tiny client: JSON in, JSON out, the token on every request."""

    def __init__(self, url: str, token: str, lang: str = "en") -> None:
        self.base = url.rstrip("/") + "/api/v1"
        self.token = token
        self.lang = lang

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept-Language", self.lang)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = {"error": raw.decode("utf-8", "replace")}
            raise ApiError(error.code, answer) from None
        return json.loads(raw) if raw else None

    def create(self, entity: str, values: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = self.call("POST", f"/{entity}", values)
        return record

    def update(self, entity: str, record: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """Change ``values``, based on the version we read (409 if someone saved since)."""
        body = {**values, "version": record["version"]}
        updated: dict[str, Any] = self.call("PATCH", f"/{entity}/{record['id']}", body)
        return updated

    def kpi(self, name: str, **params: str) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        result: dict[str, Any] = self.call("GET", f"/kpis/{name}?{query}")
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server's address")
    parser.add_argument(
        "--token",
        default=os.environ.get("FORMFLOW_TOKEN"),
        help="an API token (default: $FORMFLOW_TOKEN)",
    )
    parser.add_argument("--customer", default="深圳新创科技", help="the new customer's name")
    parser.add_argument("--amount", default="250000.00", help="the opportunity's amount")
    parser.add_argument("--lang", default="en", choices=["zh", "en"])
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token or set FORMFLOW_TOKEN (formflow token create USER PATH)")
    api = Client(args.url, args.token, args.lang)
    today = datetime.date.today()
    try:
        customer = api.create(
            "customer", {"name": args.customer, "level": "B", "email": "info@example.com"}
        )
        print(f"customer #{customer['id']} {customer['name']}")
        deal = api.create(
            "opportunity",
            {
                "name": f"{args.customer} 设备采购",
                "customer": customer["id"],
                "amount": args.amount,
                "close_date": (today + datetime.timedelta(days=30)).isoformat(),
            },
        )
        print(
            f"opportunity #{deal['id']} stage={deal['stage']} "
            f"probability={deal['probability']} version={deal['version']}"
        )
        for stage in STAGES[1:]:
            change: dict[str, Any] = {"stage": stage}
            if stage == "won":
                change.update(
                    win_reason="方案与价格合适 / good fit and price", close_date=today.isoformat()
                )
            deal = api.update("opportunity", deal, change)
            print(
                f"opportunity #{deal['id']} stage={deal['stage']} "
                f"probability={deal['probability']} version={deal['version']}"
            )
        # The KPIs over the year the deal closed in (``period=this_year`` would be the
        # server's year, in the blueprint's time zone, which may differ from ours).
        year = deal["close_date"][:4]
        for name in ("win_rate", "pipeline"):
            result = api.kpi(
                name, period="custom", **{"from": f"{year}-01-01", "to": f"{year}-12-31"}
            )
            total = result["total"]
            print(f"kpi {name} ({result['label']}, {year}): {total['value']}")
    except ApiError as error:
        print(error, file=sys.stderr)
        return 1
    except urllib.error.URLError as error:
        print(f"cannot reach {args.url}: {error.reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
