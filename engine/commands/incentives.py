"""``formflow forecast`` and ``formflow commission``: forecasts, snapshots, statements.

::

    formflow forecast PATH [--db URL] [--name NAME] [--by month|category|owner|team ...]
                      [--period P | --start D --end D] [--as USER]
                      [--compare-to SNAPSHOT_ID|latest] [--json] [--lang zh|en]
    formflow forecast snapshot PATH [--db URL] [--name NAME] [--period P] [--as USER]
                      [--note TEXT] [--json]
    formflow forecast snapshots PATH [--db URL] [--name NAME] [--as USER] [--json]
    formflow commission PATH --rep USER [--period this_month|last_month|YYYY-MM|YYYY-Qn]
                      [--db URL] [--plan NAME] [--as USER] [--json] [--lang zh|en]

Without ``--as`` the command runs as the engine itself (every record). Money is
printed with two decimals; ``--json`` prints the same objects the API returns.
Exit codes: 0 done, 1 a problem the user can fix, 2 a bug.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa

from engine.commands.output import fail, internal_error, load_blueprint
from engine.errors import FormflowError
from engine.i18n import LANGUAGES, T, Text
from engine.kpis.forecast import FORECAST_DIMENSIONS, ForecastResult
from engine.kpis.periods import PERIOD_NAMES, Period, resolve_period
from engine.records import SYSTEM, Actor
from engine.runtime import Runtime

__all__ = ["commission_command", "forecast_group"]


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


@contextmanager
def _runtime(path: Path, db_url: str | None, lang: str | None) -> Iterator[tuple[Runtime, str]]:
    from engine.config import database_url
    from engine.runtime import build_runtime
    from engine.storage.database import create_engine
    from engine.storage.migrate import ensure_current

    blueprint, chosen = load_blueprint(path, lang)
    engine = create_engine(database_url(db_url, path))
    try:
        ensure_current(engine, blueprint)
        yield build_runtime(blueprint, engine), chosen
    finally:
        engine.dispose()


def _actor(rt: Runtime, as_user: str | None) -> Actor:
    if as_user is None:
        return SYSTEM
    user = rt.users.find(as_user)
    if user is None or not user.active:
        raise FormflowError(T(f"没有启用的用户 {as_user}", f"no active user called {as_user!r}"))
    return user.actor


def _guard(lang: str | None, body: Callable[[], None]) -> None:
    chosen = lang or "zh"
    try:
        body()
    except FormflowError as exc:
        fail(exc.text, chosen, 1)
    except sa.exc.OperationalError as exc:
        fail(
            Text(zh=f"无法使用数据库：{exc.orig}", en=f"cannot use the database: {exc.orig}"),
            chosen,
            1,
        )
    except (click.exceptions.Exit, click.Abort):
        raise
    except Exception as exc:  # a bug: one line, no traceback
        internal_error(exc, chosen)


def _period(rt: Runtime, name: str | None, start: str | None, end: str | None) -> Period:
    return resolve_period(name, rt.forecasts.today(), start=start, end=end)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(_width(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [
            c + " " * (w - _width(c)) if i == 0 else " " * (w - _width(c)) + c
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        click.echo("  ".join(cells).rstrip())


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _show(result: ForecastResult, by: Sequence[str], lang: str) -> None:
    def t(zh: str, en: str) -> str:
        return Text(zh=zh, en=en).get(lang)

    period = result.period
    span = (
        t("全部", "all")
        if not period.bounded
        else f"{period.start or ''} – {period.end or ''} ({period.name})"
    )
    click.echo(f"{result.label} · {span}")
    head = [t(*_DIM_NAMES[d]) for d in by]
    figures = [
        t("单数", "Deals"),
        t("金额", "Amount"),
        t("加权", "Weighted"),
        t("历史", "Historical"),
    ]
    rows = [
        [
            *(g.labels[d] for d in by),
            str(g.figures.deals),
            _money(g.figures.amount),
            _money(g.figures.weighted),
            _money(g.figures.historical),
        ]
        for g in result.breakdown(by)
    ]
    total = result.total()
    rows.append(
        [
            t("合计", "Total"),
            *([""] * (len(by) - 1)),
            str(total.deals),
            _money(total.amount),
            _money(total.weighted),
            _money(total.historical),
        ]
    )
    _table([*head, *figures], rows)
    click.echo("")
    click.echo(
        t(
            f"历史转化率（{result.since} 起进入该阶段、已有结果的商机中赢单的比例）：",
            f"Historical win rates (of the deals that entered the stage since {result.since} "
            "and were decided, the share won):",
        )
    )
    _table(
        [
            t("阶段", "Stage"),
            t("进入", "Entered"),
            t("赢单", "Won"),
            t("输单", "Lost"),
            t("转化率", "Rate"),
        ],
        [
            [
                r.label,
                str(r.entered),
                str(r.won),
                str(r.lost),
                "-" if r.rate is None else f"{r.rate}%",
            ]
            for r in result.rates
        ],
    )
    if result.fallback:
        click.echo(
            t(
                f"无历史结果的阶段按加权金额计入历史预测：{', '.join(result.fallback)}",
                f"stages without decided history count at their weighted amount: "
                f"{', '.join(result.fallback)}",
            )
        )


_DIM_NAMES: dict[str, tuple[str, str]] = {
    "month": ("月份", "Month"),
    "category": ("类别", "Category"),
    "owner": ("负责人", "Owner"),
    "team": ("团队", "Team"),
}


class _DefaultGroup(click.Group):
    """``formflow forecast PATH`` runs ``show``; ``formflow forecast snapshot PATH`` the rest."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


_db = click.option(
    "--db",
    "db_url",
    metavar="URL",
    default=None,
    help="Database URL (default: beside the blueprint).",
)
_as = click.option(
    "--as", "as_user", metavar="USER", default=None, help="Run as this user (their scope)."
)
_name = click.option("--name", default=None, help="Which forecast (default: the first one).")
_lang = click.option("--lang", type=click.Choice(LANGUAGES), default=None, help="zh or en.")
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON (as the API).")
_periods = click.option(
    "--period",
    default=None,
    help=f"Close-date period: {', '.join(PERIOD_NAMES)} (default: all).",
)


@click.group("forecast", cls=_DefaultGroup)
def forecast_group() -> None:
    """Sales forecast of the blueprint at PATH: show, snapshot, snapshots."""


@forecast_group.command("show")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_db
@_name
@click.option(
    "--by",
    "by",
    multiple=True,
    type=click.Choice(FORECAST_DIMENSIONS),
    help="Break down by month, category, owner or team (repeat; default: month and category).",
)
@_periods
@click.option("--start", default=None, metavar="YYYY-MM-DD", help="Custom period start.")
@click.option("--end", default=None, metavar="YYYY-MM-DD", help="Custom period end (inclusive).")
@_as
@click.option(
    "--compare-to",
    "compare_to",
    default=None,
    metavar="SNAPSHOT_ID|latest",
    help="Compare with a snapshot: the change per category and the deals behind it.",
)
@_json
@_lang
def forecast_show(
    path: Path,
    db_url: str | None,
    name: str | None,
    by: Sequence[str],
    period: str | None,
    start: str | None,
    end: str | None,
    as_user: str | None,
    compare_to: str | None,
    as_json: bool,
    lang: str | None,
) -> None:
    """Show the forecast (weighted, by category, historical) of the blueprint at PATH."""
    dims = tuple(by) or ("month", "category")

    def body() -> None:
        with _runtime(path, db_url, lang) as (rt, chosen):
            actor = _actor(rt, as_user)
            if compare_to is not None:
                comparison = rt.snapshots.compare(actor, compare_to, name=name, lang=chosen)
                if as_json:
                    _echo_json(comparison.as_json())
                    return
                _show_comparison(comparison, chosen)
                return
            result = rt.forecasts.evaluate(
                actor, name=name, period=_period(rt, period, start, end), lang=chosen
            )
            if as_json:
                _echo_json(result.as_json(dims))
            else:
                _show(result, dims, chosen)

    _guard(lang, body)


def _show_comparison(comparison: Any, lang: str) -> None:
    def t(zh: str, en: str) -> str:
        return Text(zh=zh, en=en).get(lang)

    snap = comparison.snapshot
    click.echo(
        t(
            f"与快照 #{snap.id}（{snap.taken_at:%Y-%m-%d %H:%M} UTC，{snap.user or '系统'}）比较",
            f"Compared with snapshot #{snap.id} ({snap.taken_at:%Y-%m-%d %H:%M} UTC, "
            f"{snap.user or 'system'})",
        )
    )
    if comparison.blueprint_changed:
        click.echo(
            t(
                "注意：快照之后蓝图已修改，类别对应的阶段可能不同",
                "note: the blueprint changed since the snapshot; categories may map other stages",
            )
        )
    _table(
        [t("类别", "Category"), t("快照", "Then"), t("现在", "Now"), t("变化", "Change")],
        [
            [c.label, _money(c.before), _money(c.now), _money(c.change)]
            for c in comparison.categories
        ],
    )
    for c in comparison.categories:
        moves = (
            [("+", d) for d in c.entered]
            + [("-", d) for d in c.left]
            + [("~", d) for d in c.changed]
        )
        if not moves:
            continue
        click.echo(f"\n{c.label}:")
        for sign, d in moves:
            what = {
                "added": t("新增", "new"),
                "removed": t("移出", "gone"),
                "moved": f"{d.before_category} → {d.now_category}",
                "amount": t("金额变化", "amount changed"),
            }[d.kind]
            click.echo(
                f"  {sign} #{d.id} {d.title or ''} ({d.owner or '-'}): {what}, "
                f"{_money(d.before_amount)} → {_money(d.now_amount)}"
            )


@forecast_group.command("snapshot")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_db
@_name
@_periods
@_as
@click.option("--note", default=None, help="A note kept with the snapshot.")
@_json
@_lang
def forecast_snapshot(
    path: Path,
    db_url: str | None,
    name: str | None,
    period: str | None,
    as_user: str | None,
    note: str | None,
    as_json: bool,
    lang: str | None,
) -> None:
    """Store today's forecast (figures and every counted deal) with the blueprint version."""

    def body() -> None:
        with _runtime(path, db_url, lang) as (rt, chosen):
            actor = _actor(rt, as_user)
            snap = rt.snapshots.take(
                actor, name=name, period=_period(rt, period, None, None), note=note
            )
            if as_json:
                _echo_json(snap.as_json())
                return
            total = snap.figures["total"]
            click.echo(
                Text(
                    zh=f"已保存快照 #{snap.id}：{total['deals']} 单，金额 {total['amount']}，"
                    f"加权 {total['weighted']}",
                    en=f"saved snapshot #{snap.id}: {total['deals']} deal(s), amount "
                    f"{total['amount']}, weighted {total['weighted']}",
                ).get(chosen)
            )

    _guard(lang, body)


@forecast_group.command("snapshots")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@_db
@_name
@_as
@_json
@_lang
def forecast_snapshots(
    path: Path,
    db_url: str | None,
    name: str | None,
    as_user: str | None,
    as_json: bool,
    lang: str | None,
) -> None:
    """List the forecast's snapshots, newest first."""

    def body() -> None:
        with _runtime(path, db_url, lang) as (rt, chosen):
            snaps = rt.snapshots.history(_actor(rt, as_user), name=name)
            if as_json:
                _echo_json([s.as_json() for s in snaps])
                return
            _table(
                [
                    "#",
                    Text(zh="时间", en="Taken").get(chosen),
                    Text(zh="用户", en="User").get(chosen),
                    Text(zh="金额", en="Amount").get(chosen),
                    Text(zh="备注", en="Note").get(chosen),
                ],
                [
                    [
                        str(s.id),
                        f"{s.taken_at:%Y-%m-%d %H:%M}",
                        s.user or "-",
                        s.figures["total"]["amount"],
                        s.note or "",
                    ]
                    for s in snaps
                ],
            )

    _guard(lang, body)


@click.command("commission")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--rep", required=True, metavar="USER", help="Whose statement.")
@click.option(
    "--period",
    default=None,
    help="this_month, last_month, this_quarter, last_quarter, YYYY-MM or YYYY-Qn "
    "(default: this month or quarter, as the plan settles).",
)
@click.option("--plan", default=None, help="Which plan (default: the one for the rep's role).")
@_db
@_as
@_json
@_lang
def commission_command(
    path: Path,
    rep: str,
    period: str | None,
    plan: str | None,
    db_url: str | None,
    as_user: str | None,
    as_json: bool,
    lang: str | None,
) -> None:
    """A rep's commission statement for a period, line by line."""

    def body() -> None:
        with _runtime(path, db_url, lang) as (rt, chosen):
            st = rt.commissions.statement(_actor(rt, as_user), rep, period, plan=plan)
            if as_json:
                _echo_json(st.as_json(chosen))
                return

            def t(zh: str, en: str) -> str:
                return Text(zh=zh, en=en).get(chosen)

            start, end = st.period.start, st.period.end
            click.echo(
                f"{st.plan_label.get(chosen)} · {st.rep_label} ({st.rep}) · "
                f"{st.period.name} [{start} – {end})"
            )
            click.echo(f"{st.kpi_label.get(chosen)}: {_money(st.value)}")
            click.echo(f"{t('目标', 'Target')}: {_money(st.target)}")
            click.echo(
                f"{t('达成率', 'Attainment')}: "
                + ("-" if st.attainment is None else f"{st.attainment}%")
            )
            click.echo(f"{t('计算方式', 'Mode')}: {st.mode}")
            rows = []
            for line in st.lines:
                span = (
                    "-"
                    if line.lower is None
                    else f"{line.lower}% – {'' if line.upper is None else str(line.upper) + '%'}"
                )
                rows.append(
                    [
                        str(line.index + 1),
                        span,
                        _money(line.base),
                        f"{line.rate}%",
                        _money(line.payout),
                    ]
                )
            _table(
                [
                    t("档", "Tier"),
                    t("达成区间", "Attainment"),
                    t("计提金额", "Base"),
                    t("比例", "Rate"),
                    t("提成", "Payout"),
                ],
                rows,
            )
            click.echo(f"{t('小计', 'Subtotal')}: {_money(st.subtotal)}")
            if st.cap is not None:
                click.echo(
                    f"{t('封顶', 'Cap')}: {_money(st.cap)}"
                    + (
                        t("（已封顶）", " (applied)")
                        if st.capped
                        else t("（未触及）", " (not reached)")
                    )
                )
            click.echo(f"{t('应发提成', 'Commission')}: {_money(st.total)}")
            for note in st.notes:
                click.echo(f"* {note.get(chosen)}")
            if st.records:
                click.echo("")
                click.echo(
                    t(f"构成（{st.records_total} 条）：", f"Made up of ({st.records_total}):")
                )
                for r in st.records:
                    click.echo(f"  #{r.id} {r.title or ''}  {r.day or ''}  {_money(r.amount)}")

    _guard(lang, body)
