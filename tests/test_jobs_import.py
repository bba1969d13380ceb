"""`hotline jobs import`: the CSV as a coordinator's spreadsheet writes it (with or without a
byte-order mark), a wrong header stopping the file, bad rows reported by line with the good
ones still loaded, formula-looking cells kept as text, the same file twice adding nothing
twice, 10,000 rows in one go; and `hotline jobs list` and `expire`."""

from __future__ import annotations

import csv
import functools
import io
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlmodel import func, select

from bot.jobs_admin import import_csv, local_today, vocabularies
from bot.jobs_import import HEADER, CsvHeaderError, decode, parse_listings
from content.catalog import PACKAGED, Catalog
from db.models import JobListing, utcnow
from db.session import create_engine, session_factory
from tests.test_cli import hotline

TODAY = date(2026, 12, 1)
LATER = "2027-03-31"
FORMULA = '=HYPERLINK("http://example.invalid/x","click me")'


def csv_text(*rows: dict[str, str], header: tuple[str, ...] = HEADER) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(name, "") for name in header])
    return out.getvalue()


def row(**values: str) -> dict[str, str]:
    base = {
        "title": "Assembly worker",
        "employer": "Sunrise Electronics",
        "district": "yushan",
        "trade": "electronics",
        "pay_min": "5000",
        "pay_max": "6500",
        "hours": "8:00-20:00, two shifts",
        "housing": "yes",
        "contact": "0512-5555 0000",
        "expires": LATER,
    }
    return base | values


def parse(text: str, today: date = TODAY):
    districts, trades = vocabularies(Catalog())
    return parse_listings(text, districts=districts, trades=trades, today=today)


def test_the_template_loads_as_it_is() -> None:
    parsed = parse(decode((PACKAGED / "jobs_template.csv").read_bytes()))
    assert parsed.bad == [] and len(parsed.listings) == 2
    assert [line for line, _ in parsed.listings] == [2, 3]


def test_a_byte_order_mark_or_none_reads_the_same() -> None:
    text = csv_text(row(), row(title="Packer"))
    with_bom = parse(decode("\ufeff".encode() + text.encode()))
    without = parse(decode(text.encode()))
    assert [listing.title for _, listing in with_bom.listings] == ["Assembly worker", "Packer"]
    assert with_bom.listings == without.listings


def test_a_file_that_is_not_utf8_is_refused_with_how_to_save_it() -> None:
    with pytest.raises(CsvHeaderError, match='not UTF-8.*"CSV UTF-8"'):
        decode(csv_text(row(title="普工")).encode("gbk"))


def test_a_missing_column_stops_the_file_and_names_it() -> None:
    header = tuple(name for name in HEADER if name != "pay_max")
    with pytest.raises(CsvHeaderError) as error:
        parse(csv_text(row(), header=header))
    message = str(error.value)
    assert "missing column(s): pay_max" in message and "nothing was loaded" in message
    assert ",".join(HEADER) in message  # what it must be


def test_an_extra_column_stops_the_file_and_names_it() -> None:
    with pytest.raises(CsvHeaderError, match=r"not in the template: salary"):
        parse(csv_text(row(), header=(*HEADER, "salary")))


def test_an_empty_file_says_what_the_first_line_must_be() -> None:
    with pytest.raises(CsvHeaderError, match="empty.*title,employer,district"):
        parse("")


def test_bad_rows_are_reported_by_line_and_the_good_ones_still_load() -> None:
    text = csv_text(
        row(title="Good one"),
        row(expires="2027/03/31"),  # line 3
        row(expires="2027-02-30"),  # line 4: no such day
        row(expires="2026-11-30"),  # line 5: the day before TODAY
        row(pay_min="9000", pay_max="6000"),  # line 6
        row(pay_min="-1"),  # line 7
        row(pay_max="lots"),  # line 8
        row(district="Atlantis", trade="astronaut"),  # line 9: two reasons
        row(housing="maybe"),  # line 10
        row(title=""),  # line 11
        row(title="x" * 101),  # line 12
        row(title="Good two", district="玉山镇", trade="Electronics assembly", housing="否"),
    )
    parsed = parse(text)
    assert [listing.title for _, listing in parsed.listings] == ["Good one", "Good two"]
    assert parsed.listings[1][1].district == "yushan"  # a label in any language is a district
    assert parsed.listings[1][1].housing is False
    reasons = {bad.line: bad.reason for bad in parsed.bad}
    assert sorted(reasons) == list(range(3, 13))
    assert "not a date written YYYY-MM-DD" in reasons[3] and "2027/03/31" in reasons[3]
    assert "not a date" in reasons[4]
    assert "in the past" in reasons[5]
    assert reasons[6] == "pay_min 9000 is more than pay_max 6000"
    assert "below 0" in reasons[7]
    assert "not a whole number" in reasons[8]
    assert "district 'Atlantis' is not known" in reasons[9] and "trade 'astronaut'" in reasons[9]
    assert "housing 'maybe' is not yes or no" in reasons[10]
    assert reasons[11] == "title is empty"
    assert "at most 100" in reasons[12]


def test_line_numbers_count_the_lines_a_quoted_cell_spans() -> None:
    text = csv_text(row(hours="8:00-12:00\n13:00-17:00"), row(pay_min="abc"))
    parsed = parse(text)
    assert [bad.line for bad in parsed.bad] == [4]  # the header, then a row of two lines
    assert parsed.listings[0][1].hours == "8:00-12:00 13:00-17:00"


def test_a_row_with_a_stray_comma_is_reported_not_shifted() -> None:
    text = (
        csv_text(row()) + "Cook,Canteen,yushan,catering,4000,5000,6:00-14:00,no,135 0000 0000,x,y\n"
    )
    parsed = parse(text)
    assert len(parsed.listings) == 1
    assert parsed.bad[0].line == 3 and "has 11 values but the header has 10" in parsed.bad[0].reason


def test_a_formula_looking_cell_is_kept_as_text() -> None:
    parsed = parse(csv_text(row(title=FORMULA, contact="+86 138 0000 0000", employer="@home")))
    listing = parsed.listings[0][1]
    assert listing.title == FORMULA
    assert listing.contact == "+86 138 0000 0000" and listing.employer == "@home"


def test_a_row_repeated_in_the_file_is_loaded_once() -> None:
    parsed = parse(csv_text(row(), row(title="Other"), row(title="  assembly   WORKER ")))
    assert len(parsed.listings) == 2
    assert parsed.repeats == [(4, 2)]  # the same listing, written differently


# -- into the database: both SQLite and PostgreSQL -------------------------------------------


@pytest.fixture
async def sessions(database_url: str):
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def count_listings(sessions) -> int:
    async with sessions() as session:
        return (await session.exec(select(func.count()).select_from(JobListing))).one()


def future(days: int = 90) -> str:
    """A date `days` after the centre's today (the import refuses one in the past)."""
    return (_centre_today() + timedelta(days=days)).isoformat()


@functools.cache
def _centre_today() -> date:
    return local_today(Catalog(), utcnow())


async def test_the_same_file_twice_adds_nothing_twice(sessions) -> None:
    catalog = Catalog()
    text = csv_text(row(expires=future()), row(title=FORMULA, expires=future()), row(pay_min="x"))
    first = await import_csv(sessions, catalog=catalog, text=text, now=utcnow())
    assert (first.loaded, first.already_there, [b.line for b in first.bad]) == (2, 0, [4])
    again = await import_csv(sessions, catalog=catalog, text=text, now=utcnow())
    assert (again.loaded, again.already_there) == (0, 2)
    assert await count_listings(sessions) == 2
    async with sessions() as session:
        titles = set((await session.exec(select(JobListing.title))).all())
    assert FORMULA in titles  # stored as the text it was


async def test_ten_thousand_rows_load_in_one_go(sessions) -> None:
    """The figure is printed for the record; bench/jobs_import.py times it on its own."""
    expires = future()
    rows = [
        row(title=f"Line worker {n}", pay_min=str(4000 + n % 500), expires=expires)
        for n in range(10_000)
    ]
    text = csv_text(*rows)
    started = time.perf_counter()
    report = await import_csv(sessions, catalog=Catalog(), text=text, now=utcnow())
    seconds = time.perf_counter() - started
    print(f"10,000 rows imported in {seconds:.2f} s")
    assert report.loaded == 10_000 and report.bad == []
    assert await count_listings(sessions) == 10_000
    assert seconds < 30  # generous for a shared test machine; it takes under 2 s


# -- the command line ---------------------------------------------------------------------------


def test_the_command_reports_lines_and_lists_and_expires(tmp_path: Path) -> None:
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}"}
    path = tmp_path / "jobs.csv"
    text = csv_text(
        row(expires=future()),
        row(pay_min="7000", pay_max="6000"),
        row(title="Two", expires=future()),
    )
    path.write_bytes("\ufeff".encode() + text.encode())
    imported = hotline("jobs", "import", str(path), env=database, cwd=tmp_path)
    assert imported.returncode == 1, imported.stderr  # some rows were bad
    assert "Loaded 2 new listing(s); skipped 0 already there; 1 bad row(s)." in imported.stdout
    assert "line 3: pay_min 7000 is more than pay_max 6000" in imported.stdout
    again = hotline("jobs", "import", str(path), env=database, cwd=tmp_path)
    assert "Loaded 0 new listing(s); skipped 2 already there" in again.stdout
    listed = hotline("jobs", "list", env=database, cwd=tmp_path)
    assert listed.returncode == 0 and "2 listing(s) shown to workers." in listed.stdout
    first_id = listed.stdout.split()[0]
    expired = hotline("jobs", "expire", first_id, env=database, cwd=tmp_path)
    assert expired.returncode == 0 and "is no longer shown" in expired.stdout
    assert "1 listing(s) shown" in hotline("jobs", "list", env=database, cwd=tmp_path).stdout
    unknown = hotline("jobs", "expire", "99999", env=database, cwd=tmp_path)
    assert unknown.returncode == 1 and "there is no listing 99999" in unknown.stderr
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("title,employer\nA,B\n", encoding="utf-8")
    refused = hotline("jobs", "import", str(bad_header), env=database, cwd=tmp_path)
    assert refused.returncode == 1 and "missing column(s): district" in refused.stderr
    assert "Traceback" not in refused.stderr
