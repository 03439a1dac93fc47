"""Text: CONCAT, LEN, LEFT, RIGHT, MID, UPPER, LOWER, TRIM, CONTAINS, REPLACE, TEXT, VALUE.

Every function that can grow text checks the result length first, so no
formula can build a gigabyte string. Positions count characters from 1, as in
Excel; a Chinese character is one character.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from engine.i18n import T

from ..functions import Param, formula_function
from ..runtime import BlankResult, EvalContext, as_local, to_text, whole
from ..sandbox import DECIMAL, MAX_TEXT_LENGTH, TOO_LONG, check_decimal, fail
from ..types import ANY, BOOL, DATE, DATETIME, NUMBER, TEXT, list_of

CATEGORY = "text"
_COUNT = T("字符数", "character count")
_NEGATIVE = T(
    "字符数不能为负数，结果留空", "a character count cannot be negative; the result is left blank"
)


@formula_function(
    "CONCAT",
    CATEGORY,
    (
        "把各个值连成一段文本（空值当作空文本）",
        "Join the values into one text (blanks count as empty text)",
    ),
    params=(Param("value"),),
    repeat=1,
    returns=TEXT,
    context=True,
    blank_propagates=False,
    example="CONCAT(code, ' - ', name)",
)
def concat(env: EvalContext, *values: Any) -> str:
    parts = [to_text(v, env.tz) for v in values]
    if sum(len(p) for p in parts) > MAX_TEXT_LENGTH:
        fail(TOO_LONG)
    return "".join(parts)


@formula_function(
    "LEN",
    CATEGORY,
    (
        "文本的字符数（或列表的项数）；空值为 0",
        "The number of characters (or list items); 0 for blank",
    ),
    params=(Param("text", (TEXT, list_of(ANY))),),
    returns=NUMBER,
    blank_propagates=False,
    example="LEN(phone)",
)
def len_(value: Any) -> int:
    return 0 if value is None else len(value)


def _count(n: Any) -> int:
    count = whole(n, _COUNT)
    if count < 0:
        raise BlankResult(_NEGATIVE)
    return count


@formula_function(
    "LEFT",
    CATEGORY,
    ("开头的若干个字符（默认 1 个）", "The first characters (1 by default)"),
    params=(Param("text", (TEXT,)), Param("count", (NUMBER,), optional=True)),
    returns=TEXT,
    example="LEFT(code, 3)",
)
def left(text: str, count: Any = 1) -> str:
    return text[: _count(count)]


@formula_function(
    "RIGHT",
    CATEGORY,
    ("末尾的若干个字符（默认 1 个）", "The last characters (1 by default)"),
    params=(Param("text", (TEXT,)), Param("count", (NUMBER,), optional=True)),
    returns=TEXT,
    example="RIGHT(phone, 4)",
)
def right(text: str, count: Any = 1) -> str:
    n = _count(count)
    return text[-n:] if n else ""


@formula_function(
    "MID",
    CATEGORY,
    (
        "从第 start 个字符（从 1 开始）起取 count 个字符",
        "count characters starting at position start (from 1)",
    ),
    params=(Param("text", (TEXT,)), Param("start", (NUMBER,)), Param("count", (NUMBER,))),
    returns=TEXT,
    example="MID(id_number, 7, 8)",
)
def mid(text: str, start: Any, count: Any) -> str:
    first = whole(start, _COUNT)
    if first < 1:
        raise BlankResult(
            T(
                "起始位置必须从 1 开始，结果留空",
                "start must be 1 or more; the result is left blank",
            )
        )
    return text[first - 1 : first - 1 + _count(count)]


@formula_function(
    "UPPER",
    CATEGORY,
    ("转为大写", "Convert to upper case"),
    params=(Param("text", (TEXT,)),),
    returns=TEXT,
    example="UPPER(country_code)",
)
def upper(text: str) -> str:
    return text.upper()[:MAX_TEXT_LENGTH]


@formula_function(
    "LOWER",
    CATEGORY,
    ("转为小写", "Convert to lower case"),
    params=(Param("text", (TEXT,)),),
    returns=TEXT,
    example="LOWER(email)",
)
def lower(text: str) -> str:
    return text.lower()[:MAX_TEXT_LENGTH]


_SPACES = re.compile(r"[ \u3000]+")


@formula_function(
    "TRIM",
    CATEGORY,
    (
        "去掉首尾空白，并把连续空格（含全角空格）合并为一个",
        "Strip leading and trailing blanks and collapse runs of spaces (full-width too) to one",
    ),
    params=(Param("text", (TEXT,)),),
    returns=TEXT,
    example="TRIM(name)",
)
def trim(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


@formula_function(
    "CONTAINS",
    CATEGORY,
    (
        "文本包含某段文字，或列表包含某一项；空值为假",
        "True when the text contains the part, or the list contains the item; false for blank",
    ),
    params=(Param("text_or_list", (TEXT, list_of(ANY))), Param("part")),
    returns=BOOL,
    blank_propagates=False,
    example="CONTAINS(tags, 'vip')",
)
def contains(haystack: Any, part: Any) -> bool:
    if haystack is None or part is None:
        return False
    if isinstance(haystack, str):
        return isinstance(part, str) and part in haystack
    return part in haystack


@formula_function(
    "REPLACE",
    CATEGORY,
    (
        "把文本中所有的 old 替换为 new（同 Excel 的 SUBSTITUTE）",
        "Replace every occurrence of old with new (like Excel's SUBSTITUTE)",
    ),
    params=(Param("text", (TEXT,)), Param("old", (TEXT,)), Param("new", (TEXT,))),
    returns=TEXT,
    example="REPLACE(phone, '-', '')",
)
def replace(text: str, old: str, new: str) -> str:
    if not old:
        return text
    grown = len(text) + text.count(old) * (len(new) - len(old))
    if grown > MAX_TEXT_LENGTH:
        fail(TOO_LONG)
    return text.replace(old, new)


_NUMBER_FORMAT = re.compile(r"^(#,##)?0(?:\.(0+))?(%?)$")
_DATE_TOKEN = re.compile(r"yyyy|yy|mm|dd|hh|ss", re.IGNORECASE)


def format_number(value: Any, fmt: str) -> str:
    match = _NUMBER_FORMAT.match(fmt)
    if match is None:
        fail(T(f"TEXT 不支持数字格式 '{fmt}'", f"TEXT does not support the number format '{fmt}'"))
    grouping, decimals, percent = match.groups()
    number = Decimal(value)
    if percent:
        number = DECIMAL.multiply(number, 100)
    places = len(decimals or "")
    number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP, context=DECIMAL)
    body = f"{number:,.{places}f}" if grouping else f"{number:.{places}f}"
    return body + percent


def format_date(value: date, fmt: str) -> str:
    """Excel-like date codes: yyyy yy mm dd hh ss; mm after hh or before ss is minutes."""
    out: list[str] = []
    pos = 0
    tokens = list(_DATE_TOKEN.finditer(fmt))
    if not tokens:
        fail(T(f"TEXT 不支持日期格式 '{fmt}'", f"TEXT does not support the date format '{fmt}'"))
    for i, match in enumerate(tokens):
        out.append(fmt[pos : match.start()])
        token = match.group().lower()
        prev = tokens[i - 1].group().lower() if i else ""
        nxt = tokens[i + 1].group().lower() if i + 1 < len(tokens) else ""
        if token == "mm" and (prev == "hh" or nxt == "ss"):
            token = "mi"
        out.append(_date_part(value, token))
        pos = match.end()
    out.append(fmt[pos:])
    return "".join(out)


def _date_part(value: date, token: str) -> str:
    if token == "yyyy":
        return f"{value.year:04d}"
    if token == "yy":
        return f"{value.year % 100:02d}"
    if token == "mm":
        return f"{value.month:02d}"
    if token == "dd":
        return f"{value.day:02d}"
    if not isinstance(value, datetime):
        return "00"
    if token == "hh":
        return f"{value.hour:02d}"
    if token == "mi":
        return f"{value.minute:02d}"
    return f"{value.second:02d}"


@formula_function(
    "TEXT",
    CATEGORY,
    (
        "把值转为文本，可带格式：'0.00'、'#,##0'、'0%'、'yyyy-mm-dd hh:mm'",
        "Turn a value into text, optionally formatted: '0.00', '#,##0', '0%', 'yyyy-mm-dd hh:mm'",
    ),
    params=(
        Param("value", (NUMBER, DATE, DATETIME, TEXT, BOOL)),
        Param("format", (TEXT,), optional=True),
    ),
    returns=TEXT,
    context=True,
    example="TEXT(amount, '#,##0.00')",
)
def text(env: EvalContext, value: Any, fmt: str | None = None) -> str:
    if not fmt:
        return to_text(value, env.tz)
    if isinstance(value, datetime):
        return format_date(as_local(value, env.tz), fmt)
    if isinstance(value, date):
        return format_date(value, fmt)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return format_number(value, fmt)
    return to_text(value, env.tz)


@formula_function(
    "VALUE",
    CATEGORY,
    (
        "把文本转为数字（可含千分位逗号和 %）；无法识别时为空并给出警告",
        "Turn text into a number (thousands commas and % allowed); blank with a warning "
        "if unreadable",
    ),
    params=(Param("text", (TEXT,)),),
    returns=NUMBER,
    example="VALUE(imported_amount)",
)
def value(text: str) -> Any:
    cleaned = text.strip().replace(",", "").replace("，", "")
    percent = cleaned.endswith("%")
    if percent:
        cleaned = cleaned[:-1].strip()
    if not cleaned or len(cleaned) > 60:
        raise BlankResult(_UNREADABLE.format(text=text[:60]))
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise BlankResult(_UNREADABLE.format(text=text[:60])) from None
    if not number.is_finite():
        raise BlankResult(_UNREADABLE.format(text=text[:60]))
    number = check_decimal(number)
    if percent:
        return DECIMAL.divide(number, 100)
    if number == number.to_integral_value() and "." not in cleaned and "e" not in cleaned.lower():
        return int(number)
    return number


_UNREADABLE = T(
    "无法把 '{text}' 识别为数字，结果留空",
    "cannot read '{text}' as a number; the result is left blank",
)
