"""Hostile and odd import files, refused early with a message that says why.

Zip bombs (refused before anything is inflated), XXE and entity expansion in a
workbook, a 1,000-column CSV refused at its header row, mixed encodings named by
line, files that are not what their extension says, UTF-16, GB18030, formula
cells read as their text, lying sheet dimensions, over-long cells and lines.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from engine.imports import FileRefused, ImportLimits, ImportOptions, ImportService
from engine.imports.reading import BLOCK, open_file
from engine.loader import load
from engine.records import RecordService
from engine.storage.database import create_engine
from engine.storage.migrate import initialise
from engine.storage.schema import build_schema

CRM = Path(__file__).resolve().parent.parent / "blueprints" / "crm"
LIMITS = ImportLimits()


def refused(path: Path, limits: ImportLimits = LIMITS, name: str | None = None) -> FileRefused:
    with pytest.raises(FileRefused) as info, open_file(path, limits, name) as book:
        for _row in book.main.rows():
            pass
    return info.value


def rows_of(path: Path, limits: ImportLimits = LIMITS) -> tuple[list[str], list[list[Any]]]:
    with open_file(path, limits) as book:
        sheet = book.main
        return sheet.header, [row.cells for row in sheet.rows()]


def workbook(path: Path, rows: list[list[Any]]) -> Path:
    book = openpyxl.Workbook()
    ws = book.active
    for row in rows:
        ws.append(row)
    book.save(path)
    return path


def rewrite(path: Path, entry: str, change: Any) -> Path:
    """Replace one entry of a zip (an xlsx) with ``change(old bytes)``."""
    with zipfile.ZipFile(path) as src:
        items = [(info, src.read(info.filename)) for info in src.infolist()]
    out = path.with_name("hostile-" + path.name)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, data in items:
            dst.writestr(info.filename, change(data) if info.filename == entry else data)
    return out


# --------------------------------------------------------------------------- zip bombs


def _bomb(path: Path, size: int, entries: int = 1) -> Path:
    template = workbook(path.with_name("template.xlsx"), [["name"], ["a"]])
    with zipfile.ZipFile(template) as src:
        items = [(info.filename, src.read(info.filename)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in items:
            dst.writestr(name, data)
        chunk = b"\0" * (1 << 20)
        for n in range(entries):
            with dst.open(f"xl/media/zeros{n}.bin", "w") as out:
                for _ in range(size // len(chunk)):
                    out.write(chunk)
    return path


@pytest.fixture
def no_inflating(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if openpyxl is asked to open (and so inflate) the workbook."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the workbook was opened")

    monkeypatch.setattr(openpyxl, "load_workbook", refuse)
    yield


def test_a_zip_bomb_is_refused_before_inflating(tmp_path: Path, no_inflating: None) -> None:
    bomb = _bomb(tmp_path / "bomb.xlsx", 64 << 20)  # 64 MB of zeros, ~64 KB compressed
    assert bomb.stat().st_size < 1 << 20
    error = refused(bomb)
    assert "zip bomb" in error.text.get("en") and "压缩炸弹" in error.text.get("zh")
    assert "xl/media/zeros0.bin" in error.text.get("en")


def test_entry_and_total_sizes_are_limited(tmp_path: Path, no_inflating: None) -> None:
    bomb = _bomb(tmp_path / "big.xlsx", 4 << 20, entries=3)
    small = ImportLimits(max_ratio=10_000, max_entry_bytes=2 << 20)
    assert "inflates to 4 MB" in refused(bomb, small).text.get("en")
    total = ImportLimits(max_ratio=10_000, max_total_bytes=10 << 20)
    assert "in all" in refused(bomb, total).text.get("en")
    entries = ImportLimits(max_zip_entries=5)
    assert "entries" in refused(bomb, entries).text.get("en")


def test_a_zip_without_a_workbook_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w/>")
    assert "no workbook" in refused(path).text.get("en")
    path.write_bytes(b"PK\x03\x04 damaged beyond repair")
    assert "damaged" in refused(path).text.get("en")


# --------------------------------------------------------------------------- XML attacks


_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def handmade_xlsx(path: Path, prologue: str, cell: str) -> Path:
    """A minimal workbook whose one cell is a shared string, the string part starting
    with ``prologue`` (a DOCTYPE) and holding ``cell``."""
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/'
            'vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            f'ContentType="{_CT}.worksheet+xml"/>'
            '<Override PartName="/xl/sharedStrings.xml" '
            f'ContentType="{_CT}.sharedStrings+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId2" Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>"
        ),
        "xl/worksheets/sheet1.xml": (
            f'<worksheet xmlns="{_MAIN}"><sheetData>'
            '<row r="1"><c r="A1" t="inlineStr"><is><t>name</t></is></c></row>'
            '<row r="2"><c r="A2" t="s"><v>0</v></c></row></sheetData></worksheet>'
        ),
        "xl/sharedStrings.xml": (
            f'<?xml version="1.0" encoding="UTF-8"?>{prologue}'
            f'<sst xmlns="{_MAIN}" count="1" uniqueCount="1"><si><t>{cell}</t></si></sst>'
        ),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts.items():
            archive.writestr(name, text)
    return path


def test_a_handmade_workbook_with_shared_strings_reads(tmp_path: Path) -> None:
    path = handmade_xlsx(tmp_path / "plain.xlsx", "", "Acme")
    assert rows_of(path) == (["name"], [["Acme"]])


def test_xxe_in_the_shared_strings_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE", encoding="utf-8")
    doctype = f'<!DOCTYPE sst [<!ENTITY xxe SYSTEM "file://{secret}">]>'
    error = refused(handmade_xlsx(tmp_path / "xxe.xlsx", doctype, "&xxe;"))
    assert "XXE" in error.text.get("en") and "XXE" in error.text.get("zh")
    assert "TOP-SECRET-VALUE" not in error.text.get("en")


def test_xxe_in_a_sheet_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE", encoding="utf-8")
    good = workbook(tmp_path / "good.xlsx", [["name", "phone"], ["Acme", "021"]])
    doctype = f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret}">]>'.encode()

    def inject(data: bytes) -> bytes:
        body = data.split(b"?>", 1)[1] if data.startswith(b"<?xml") else data
        body = body.replace(b">Acme<", b">&xxe;<", 1)
        return b'<?xml version="1.0" encoding="UTF-8"?>' + doctype + body

    hostile = rewrite(good, "xl/worksheets/sheet1.xml", inject)
    assert b"&xxe;" in zipfile.ZipFile(hostile).read("xl/worksheets/sheet1.xml")
    error = refused(hostile)
    assert "XXE" in error.text.get("en")
    assert "TOP-SECRET-VALUE" not in error.text.get("en")


def test_entity_expansion_in_the_workbook_part_is_refused(tmp_path: Path) -> None:
    good = workbook(tmp_path / "good.xlsx", [["name"], ["Acme"]])
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    )

    def inject(data: bytes) -> bytes:
        body = data.split(b"?>", 1)[1] if data.startswith(b"<?xml") else data
        return laughs + body.replace(b"<workbook ", b"<workbook a='&lol3;' ", 1)

    hostile = rewrite(good, "xl/workbook.xml", inject)
    assert "XXE" in refused(hostile).text.get("en")


# --------------------------------------------------------------------------- wide files


def test_a_1000_column_csv_is_refused_at_its_header_row(tmp_path: Path) -> None:
    """1,000 columns (the limit is 200): refused having read the first block only."""
    path = tmp_path / "wide.csv"
    row = ",".join("x" for _ in range(1000)) + "\n"
    with path.open("w", encoding="ascii") as out:
        out.write(",".join(f"c{i}" for i in range(1000)) + "\n")
        for _ in range(3000):  # 6 MB of data rows that are never read
            out.write(row)
    assert path.stat().st_size > 5 * BLOCK
    with pytest.raises(FileRefused) as info:
        open_file(path, LIMITS)
    assert info.value.line == 1
    assert "row 1 (the header) has 1,000 columns" in info.value.text.get("en")
    assert "超过上限 200 列" in info.value.text.get("zh")


def test_a_1000_column_workbook_is_refused_at_its_header_row(tmp_path: Path) -> None:
    path = workbook(tmp_path / "wide.xlsx", [[f"c{i}" for i in range(1000)], ["x"] * 1000])
    with pytest.raises(FileRefused) as info:
        open_file(path, LIMITS)
    assert "more than the limit of 200" in info.value.text.get("en")


def test_a_data_row_wider_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n" + ",".join("9" for _ in range(300)) + "\n", encoding="ascii")
    assert "row 3 has 300 columns" in refused(path).text.get("en")


def test_too_many_rows_and_too_long_lines_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a\n" + "x\n" * 11, encoding="ascii")
    assert "more than the limit of 10 data rows" in refused(
        path, ImportLimits(max_rows=10)
    ).text.get("en")
    endless = tmp_path / "endless.csv"
    endless.write_bytes(b"a\n" + b"x" * (3 * BLOCK))
    tiny = ImportLimits(max_columns=2, max_cell_chars=1000)
    error = refused(endless, tiny)
    assert error.line == 2 and "too long" in error.text.get("en")


def test_a_cell_over_the_limit_is_a_problem_of_its_row(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("a,b\n" + "y" * 40_000 + ",ok\n", encoding="ascii")
    with open_file(path, LIMITS) as book:
        [row] = list(book.main.rows())
    assert row.cells == [None, "ok"]
    [(column, message)] = row.problems
    assert column == 0 and "longer than 32,767 characters" in message.get("en")


# --------------------------------------------------------------------------- encodings


def test_mixed_encodings_are_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes("名称,电话\n甲公司,1\n".encode() + "乙公司,2\n".encode("gb18030") + b"c,3\n")
    error = refused(path)
    assert error.line == 3 and "line 3" in error.text.get("en")
    assert "mixes encodings" in error.text.get("en") and "第 3 行" in error.text.get("zh")
    backwards = tmp_path / "backwards.csv"
    backwards.write_bytes(
        "名称,电话\n甲公司,1\n".encode("gb18030") + b"b,2\n" + "北京乙公司,3\n".encode()
    )
    error = refused(backwards)
    assert error.line == 4 and "mixes encodings" in error.text.get("en")


def test_a_gb18030_file_reads_as_chinese(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes("客户名称,地址\n北京甲公司,朝阳区建国路\n𠀀字,扩展字符\n".encode("gb18030"))
    header, rows = rows_of(path)
    assert header == ["客户名称", "地址"]
    assert rows == [["北京甲公司", "朝阳区建国路"], ["𠀀字", "扩展字符"]]


def test_the_encoding_is_decided_by_the_first_line_that_is_not_ascii(tmp_path: Path) -> None:
    """An ASCII first megabyte does not make a GB18030 file UTF-8."""
    path = tmp_path / "late.csv"
    ascii_rows = "".join(f"row{i:07d},x\n" for i in range(120_000)).encode()
    assert len(ascii_rows) > BLOCK
    path.write_bytes(b"a,b\n" + ascii_rows + "北京,上海\n".encode("gb18030"))
    _header, rows = rows_of(path)
    assert rows[-1] == ["北京", "上海"] and len(rows) == 120_001


def test_utf8_with_bom_and_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeff名称;金额\n甲;1,5\n".encode())
    assert rows_of(path) == (["名称", "金额"], [["甲", "1,5"]])


def test_bytes_in_no_known_encoding_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.csv"
    path.write_bytes(b"a,b\n\x80\xff\xfe,1\n")
    error = refused(path)
    assert error.line == 2 and "neither UTF-8 nor GB18030" in error.text.get("en")


def test_utf16_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "unicode.csv"
    path.write_bytes("名称\t电话\n甲\t1\n".encode("utf-16"))
    assert "CSV UTF-8" in refused(path).text.get("en")


# --------------------------------------------------------------------------- not what it says


def test_an_xlsx_that_is_really_a_csv(tmp_path: Path) -> None:
    path = tmp_path / "report.xlsx"
    path.write_text("name,phone\nAcme,1\n", encoding="utf-8")
    error = refused(path)
    assert "named .xlsx but holds a text file" in error.text.get("en")


def test_a_csv_that_is_really_a_zip(tmp_path: Path) -> None:
    book = workbook(tmp_path / "book.xlsx", [["name"], ["Acme"]])
    path = tmp_path / "data.csv"
    path.write_bytes(book.read_bytes())
    assert "named .csv but holds a ZIP archive" in refused(path).text.get("en")
    other = tmp_path / "archive.csv"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("a.txt", "hello")
    assert "ZIP archive" in refused(other).text.get("en")


def test_other_disguises_and_formats(tmp_path: Path) -> None:
    pdf = tmp_path / "x.csv"
    pdf.write_bytes(b"%PDF-1.4 ...")
    assert "a PDF file" in refused(pdf).text.get("en")
    ole = tmp_path / "old.csv"
    ole.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    assert "old Excel .xls" in refused(ole).text.get("en")
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"a,b\n\0\0\0\n")
    assert "binary" in refused(binary).text.get("en")
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    assert ".xls files are not supported" in refused(xls).text.get("en")
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    assert "unsupported file type .exe" in refused(exe).text.get("en")
    # the name the user gave decides, not the stored (random) name
    stored = tmp_path / "upload-3f2a"
    stored.write_text("a\n1\n", encoding="ascii")
    assert "named .xlsx" in refused(stored, name="客户.xlsx").text.get("en")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"\n\n")
    assert "empty" in refused(empty).text.get("en")


# --------------------------------------------------------------------------- workbook cells


def test_formula_cells_are_read_as_their_text(tmp_path: Path) -> None:
    path = workbook(tmp_path / "f.xlsx", [["name", "note"], ["Acme", "=SUM(1,2)"]])
    _header, rows = rows_of(path)
    assert rows == [["Acme", "=SUM(1,2)"]]


def test_a_lying_dimension_does_not_hide_rows(tmp_path: Path) -> None:
    good = workbook(tmp_path / "d.xlsx", [["name"], *[[f"r{i}"] for i in range(10)]])

    def lie(data: bytes) -> bytes:
        return data.replace(b'<dimension ref="A1:A11"/>', b'<dimension ref="A1:A2"/>')

    hostile = rewrite(good, "xl/worksheets/sheet1.xml", lie)
    _header, rows = rows_of(hostile)
    assert len(rows) == 10


def test_blank_rows_are_skipped_and_numbers_kept(tmp_path: Path) -> None:
    path = workbook(tmp_path / "b.xlsx", [["name", "n"], ["a", 1], [None, None], ["b", 2.5]])
    with open_file(path, LIMITS) as book:
        rows = list(book.main.rows())
    assert [(r.number, r.cells) for r in rows] == [(2, ["a", 1]), (4, ["b", 2.5])]
    with open_file(path, LIMITS) as book:
        blocks = list(book.main.blocks(1))
    assert [[(r.number, r.cells) for r in b] for b in blocks] == [
        [(2, ["a", 1])],
        [(4, ["b", 2.5])],
    ]


def _odd_csv(path: Path) -> Path:
    """A CSV file of every shape a block of rows can hold, spread over many blocks."""
    lines = ["name,phone,notes"]
    for i in range(1, 2600):
        if i % 97 == 0:
            lines.append("")  # an empty line
        elif i % 89 == 0:
            lines.append("  , ,\t")  # blank cells only
        elif i % 83 == 0:
            lines.append(f"short {i}")  # fewer cells than the header
        elif i % 79 == 0:
            lines.append(f"wide {i},1,2,3")  # more cells than the header
        elif i % 73 == 0:
            lines.append(f"long {i},{'y' * 60},ok")  # a cell over the limit
        elif i % 71 == 0:
            lines.append(f" ,{i},first cell blank")
        else:
            lines.append(f"row {i},{i},")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("size", [1, 3, 1000, 4096])
def test_blocks_of_rows_are_the_rows(tmp_path: Path, size: int) -> None:
    """The import reads a CSV file in blocks (``Sheet.blocks``): they hold exactly the
    rows ``rows()`` gives, in order, ``size`` at a time, with the same problems."""
    path = _odd_csv(tmp_path / "odd.csv")
    limits = ImportLimits(max_cell_chars=50)

    def shape(row: Any) -> tuple[Any, ...]:
        return (row.number, row.cells, [(c, m.get("en")) for c, m in row.problems])

    with open_file(path, limits) as book:
        expected = [shape(r) for r in book.main.rows()]
        warnings = list(book.main.warnings)
    with open_file(path, limits) as book:
        blocks = list(book.main.blocks(size))
        assert [shape(r) for block in blocks for r in block] == expected
        assert book.main.warnings == warnings
    assert all(len(block) == size for block in blocks[:-1]) and 0 < len(blocks[-1]) <= size
    numbers = [n for n, _cells, _problems in expected]
    assert len(numbers) == 2599 - 26 - 29  # the empty and the blank lines are left out
    assert numbers[:3] == [2, 3, 4] and 98 not in numbers  # data line 97 is file line 98
    short = next(r for r in expected if r[1][0] == "short 83")
    assert short[1] == ["short 83", None, None] and short[2] == []
    long = next(r for r in expected if r[1][0] == "long 73")
    assert long[1] == ["long 73", None, "ok"] and "longer than 50" in long[2][0][1]
    assert any("right of the last header column" in w.get("en") for w in warnings)


# --------------------------------------------------------------------------- through the service


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ImportService]:
    bp = load(CRM)
    schema = build_schema(bp)
    engine = create_engine(f"sqlite:///{tmp_path}/f.db")
    initialise(engine, bp, schema)
    yield ImportService(RecordService(bp, schema, engine))
    engine.dispose()


def test_a_refused_file_is_a_failed_result_and_job(service: ImportService, tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    path.write_text("name\nAcme\n", encoding="utf-8")
    job = service.jobs.create(
        user=None, entity="customer", file_name="x.xlsx", mode="all", update_on=None, dry_run=False
    )
    result = service.run("customer", path, job_id=job, options=ImportOptions())
    assert result.refused is not None and result.state == "failed" and not result.committed
    stored = service.jobs.get(job)
    assert stored is not None and stored.state == "failed" and stored.message is not None
    assert "Excel workbook" in stored.message.get("en")


def test_a_workbook_formula_payload_imports_as_text(service: ImportService, tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "c.xlsx",
        [["name", "phone", "address"], ["甲公司", "021-5555 0000", "=cmd|' /C calc'!A0"]],
    )
    result = service.run("customer", path, report_path=tmp_path / "r.xlsx")
    assert result.ok, [e.render("en") for e in result.errors]
    [row] = service.records.list_records("customer").rows
    assert row["address"] == "=cmd|' /C calc'!A0"


def test_the_report_holds_text_cells_never_formulas(service: ImportService, tmp_path: Path) -> None:
    data = io.StringIO()
    data.write("name,phone,address\n")
    data.write('=HYPERLINK("http://evil"),,@SUM(1)\n')
    path = tmp_path / "bad.csv"
    path.write_text(data.getvalue(), encoding="utf-8")
    report = tmp_path / "report.xlsx"
    result = service.run("customer", path, report_path=report, options=ImportOptions(lang="en"))
    assert not result.ok and result.report_path == report
    with zipfile.ZipFile(report) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and 't="inlineStr"' in sheet
    book = openpyxl.load_workbook(report)
    ws = book.worksheets[0]
    values = [[c.value for c in row] for row in ws.iter_rows()]
    assert values[0] == ["行 / Row", "name", "phone", "address", "错误 / Errors"]
    assert values[1][1] == '=HYPERLINK("http://evil")' and ws.cell(2, 2).data_type == "s"
    assert "Give an email or a phone number" in values[1][4]
    assert ws.cell(2, 5).fill.fill_type == "solid"


def test_a_date_cell_in_a_text_column_imports_as_text(
    service: ImportService, tmp_path: Path
) -> None:
    from datetime import datetime

    path = workbook(
        tmp_path / "d.xlsx",
        [
            ["name", "phone", "website", "address"],
            ["甲公司", 2155550000, None, datetime(2026, 11, 27)],
        ],
    )
    result = service.run("customer", path)
    assert result.ok, [e.render("en") for e in result.errors]
    [row] = service.records.list_records("customer").rows
    assert row["address"] == "2026-11-27" and row["phone"] == "2155550000"
