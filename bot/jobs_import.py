"""Reads a coordinator's CSV of job listings (`hotline jobs import`) into listings to add.

The header is checked first and a wrong one stops the file, since every row would be read
wrongly; after it each row stands alone: a bad row is reported with its line number and
why, and the good rows still load. Cells are kept as the text they are: a cell that looks
like a spreadsheet formula ("=HYPERLINK(…)") is stored and shown as that text, never
evaluated, so nothing here treats = + - @ specially except that a pay must be a number.
The rules for one row are db/job_rows.py's, shared with /jobs add in the staff group.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date

from db.job_rows import FIELDS, Vocabulary, read_listing
from db.jobs import NewListing

HEADER = FIELDS  # the columns, in the template's order


class CsvHeaderError(ValueError):
    """The file cannot be read as listings at all (not UTF-8, empty, a wrong header)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


@dataclass
class ParsedCsv:
    listings: list[tuple[int, NewListing]] = field(default_factory=list)  # (line, listing)
    bad: list[BadRow] = field(default_factory=list)
    repeats: list[tuple[int, int]] = field(default_factory=list)  # (line, the line it repeats)


def decode(data: bytes) -> str:
    """UTF-8, with or without the byte-order mark spreadsheets write."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvHeaderError(
            f"the file is not UTF-8 (byte {error.start} is not): in the spreadsheet, save it"
            ' as "CSV UTF-8"'
        ) from None


def parse_listings(
    text: str, *, districts: Vocabulary, trades: Vocabulary, today: date
) -> ParsedCsv:
    """Every row checked; `today` is the centre's date (an expiry before it is refused)."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvHeaderError(
            f"the file is empty: its first line must be {','.join(HEADER)}"
        ) from None
    except csv.Error as error:
        raise CsvHeaderError(f"line 1 cannot be read as CSV: {error}") from None
    columns = _columns(header)
    parsed = ParsedCsv()
    seen: dict[str, int] = {}
    line_end = reader.line_num
    while True:
        line = line_end + 1  # where this record starts (a quoted cell may span lines)
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            parsed.bad.append(BadRow(line, f"cannot be read as CSV: {error}"))
            line_end = reader.line_num
            continue
        line_end = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(cells) != len(HEADER):
            parsed.bad.append(
                BadRow(
                    line,
                    f"has {len(cells)} values but the header has {len(HEADER)}"
                    ' (a value with a comma in it needs "double quotes" around it)',
                )
            )
            continue
        row = {name: cells[index] for name, index in columns.items()}
        listing, problems = read_listing(row, districts=districts, trades=trades, today=today)
        if problems:
            parsed.bad.append(BadRow(line, "; ".join(p.english() for p in problems)))
        elif listing.source_key in seen:
            parsed.repeats.append((line, seen[listing.source_key]))
        else:
            seen[listing.source_key] = line
            parsed.listings.append((line, listing))
    return parsed


def _columns(header: list[str]) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    problems = []
    twice = sorted({name for name in names if names.count(name) > 1 and name})
    if twice:
        problems.append(f"column(s) written twice: {', '.join(twice)}")
    missing = [name for name in HEADER if name not in names]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    extra = [name or "(an empty name)" for name in names if name not in HEADER]
    if extra:
        problems.append(f"column(s) not in the template: {', '.join(extra)}")
    if problems:
        raise CsvHeaderError(
            f"the header is wrong ({'; '.join(problems)}); nothing was loaded."
            f" The first line must be exactly: {','.join(HEADER)}"
        )
    return {name: names.index(name) for name in HEADER}
