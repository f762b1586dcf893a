"""What a batch works on: the rows of a CSV file, a list of case ids or an action's
default selection, each resolved to its case (or to the reason it is skipped)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from align_workflow.cases.models import Case

ID_COLUMNS = ("case_id", "case_number", "mrn")
COMMENTS_COLUMN = "comments"
# The old ad-hoc scripts' files: `id,medical_record_number` (acceptance) and
# `id,medical_record_number,body,comment` (revisions). Their names are read as ours.
OLD_NAMES = {"id": "case_id", "medical_record_number": "mrn", "comment": COMMENTS_COLUMN, "body": COMMENTS_COLUMN}
COLUMN_MEANINGS = {
    "case_id": "the case id",
    "case_number": "the case number",
    "mrn": "the MRN, checked against the case",
    COMMENTS_COLUMN: "the revision comment",
}


class BatchInputError(Exception):
    """The selection cannot be used at all (missing file, not a CSV, no id column, ...).
    Nothing was sent."""


def is_case_id(text) -> bool:
    """ASCII digits only: str.isdigit() also says yes to '²' or '١٢', which int() refuses or
    reads as another number."""
    return isinstance(text, str) and text.isascii() and text.isdigit()


# --- What was selected -------------------------------------------------------------------


@dataclass
class Row:
    """One case to work on, as the selection named it."""

    label: str  # "line 4", "case id 17": where it came from, for messages
    case: Case | None = None
    line: int | None = None  # the CSV line
    comments: str | None = None  # revise: the file's comments ("" or None: the default)
    problem: str | None = None  # why this row is skipped without looking at a case
    explicit: bool = True  # named by the user (a file, --case-ids), not by the default selection

    @property
    def case_number(self):
        return self.case.case_number if self.case else ""


def _normalise(name: str) -> str:
    return "_".join(str(name).strip().strip("\ufeff").lower().replace("-", " ").split())


def _columns_for(action) -> tuple[str, ...]:
    return ID_COLUMNS + ((COMMENTS_COLUMN,) if action.takes_comments else ())


def _read_text(path) -> str:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BatchInputError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise BatchInputError(f"{path} is a directory, not a CSV file.") from None
    except OSError as exc:
        raise BatchInputError(f"{path} cannot be read: {exc.strerror or exc}.") from None
    if not data.strip():
        raise BatchInputError(
            f"{path} is empty: expected a header row naming a case_id, case_number or mrn "
            "column, then one row per case."
        )
    if b"\x00" in data:
        raise BatchInputError(f"{path} is not a CSV file (it holds binary data; save a spreadsheet as CSV first).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchInputError(
            f"{path} is not a CSV file: byte {exc.start} is not UTF-8 text (save it as CSV, UTF-8)."
        ) from None


def _canonical(name: str) -> str:
    return OLD_NAMES.get(name, name)


def _header(path, text, allowed):
    """The delimiter and the normalised column names; BatchInputError for a header we cannot use."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    for delimiter in (",", ";", "\t"):
        names = [_normalise(n) for n in next(csv.reader([first], delimiter=delimiter), [])]
        if any(_canonical(n) in ID_COLUMNS for n in names):
            break
    else:
        # Not echoed: a file without a header row would show a patient's data here.
        count = len(next(csv.reader([first]), []))
        raise BatchInputError(
            f"{path}: the first line must be a header row naming a case_id (or id), case_number or mrn "
            "(or medical_record_number) column (names are matched whatever their case or position); its "
            f"{count} column(s) name none of them. A file without a header row is refused."
        )
    named = [n for n in names if n]
    unknown = [n for n in named if _canonical(n) not in allowed]
    if unknown:
        shown = ", ".join(repr(n[:40]) for n in unknown)
        readable = ", ".join(allowed) + "".join(
            f", {old} (= {new})" for old, new in OLD_NAMES.items() if new in allowed
        )
        raise BatchInputError(
            f"{path}: unknown column(s) {shown}; this command reads only {readable}. "
            "Remove or rename them (nothing was sent)."
        )
    twice = sorted({n for n in named if named.count(n) > 1})
    doubled = sorted(
        {
            _canonical(n)
            for n in named
            if _canonical(n) != COMMENTS_COLUMN and [_canonical(m) for m in named].count(_canonical(n)) > 1
        }
    )
    if twice or doubled:
        raise BatchInputError(
            f"{path}: column(s) {', '.join(twice or doubled)} appear more than once"
            + ("" if twice else " (under an old and a new name)")
            + "."
        )
    return delimiter, names


def columns_read(names) -> list[str]:
    """What each column of the header is read as, e.g. "id (the case id)"."""
    return [f"{n} ({COLUMN_MEANINGS[_canonical(n)]})" for n in names if n]


def _comments_of(values, line):
    """The revision comment of a row: `comments`, or the old files' `comment` / `body`.
    Returns (comments, problem)."""
    given = {n: values[n] for n in ("comments", "comment", "body") if values.get(n)}
    texts = set(given.values())
    if len(texts) > 1:
        return None, (
            f"line {line} has different text under {' and '.join(given)}: keep the revision comment in one of them"
        )
    return (texts.pop() if texts else None), None


def rows_from_csv(path, action, *, columns=None) -> list[Row]:
    """The rows of a CSV file with a header row. Raises BatchInputError when the file as
    a whole is unusable; a row that names no known case (or a case named on an earlier
    row) becomes a Row with a `problem`. `columns`, a list, gets what each column is read
    as (columns_read)."""
    text = _read_text(path)
    allowed = _columns_for(action)
    delimiter, names = _header(path, text, allowed)
    if columns is not None:
        columns.extend(columns_read(names))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        next(reader)  # the header
        records, end = [], reader.line_num
        for cells in reader:
            start, end = end + 1, reader.line_num
            records.append((start, cells))
    except csv.Error as exc:
        raise BatchInputError(f"{path}: line {reader.line_num} is not valid CSV ({exc}).") from None

    rows, given = [], []
    for line, cells in records:
        if not any(c.strip() for c in cells):
            continue  # a blank line
        row = Row(label=f"line {line}", line=line)
        rows.append(row)
        extra = cells[len(names) :]
        nameless = [c for name, c in zip(names, cells, strict=False) if not name and c.strip()]
        if any(c.strip() for c in extra) or nameless:
            row.problem = (
                f"line {line} has more values than the header has named columns "
                f"({len(cells)} values, {len([n for n in names if n])} columns)"
            )
            given.append({})
            continue
        values = {name: cell.strip() for name, cell in zip(names, cells, strict=False) if name}
        if action.takes_comments:
            row.comments, row.problem = _comments_of(values, line)
            if row.problem:
                given.append({})
                continue
        ids = {_canonical(k): v for k, v in values.items() if _canonical(k) in ID_COLUMNS and v}
        if not ids:
            row.problem = f"line {line} has no case_id, case_number or mrn"
        elif "case_id" in ids and not is_case_id(ids["case_id"]):
            row.problem = f"case_id {ids['case_id'][:40]!r} is not a case id (a whole number)"
        given.append(ids)
    if not rows:
        raise BatchInputError(f"{path} has a header row but no rows: no case to work on.")
    _resolve(rows, given)
    return rows


def parse_case_ids(text: str) -> list[int]:
    """`--case-ids 1,2,3` -> [1, 2, 3]; BatchInputError for anything else."""
    parts = [p.strip() for p in str(text).replace(";", ",").split(",")]
    parts = [p for p in parts if p]
    if not parts:
        raise BatchInputError("--case-ids names no case: give case ids separated by commas, e.g. --case-ids 12,15,18.")
    bad = [p for p in parts if not is_case_id(p)]
    if bad:
        raise BatchInputError(
            f"--case-ids: {', '.join(repr(b[:40]) for b in bad)} is not a case id "
            "(case ids are whole numbers; for case numbers or MRNs use --csv)."
        )
    return [int(p) for p in parts]


def rows_from_ids(case_ids: Iterable[int]) -> list[Row]:
    ids = list(case_ids)
    rows = [Row(label=f"case id {case_id}") for case_id in ids]
    _resolve(rows, [{"case_id": str(case_id)} for case_id in ids])
    return rows


def _resolve(rows: list[Row], given: list[dict]) -> None:
    """Find each row's case (in three queries for the whole selection) and mark unknown,
    ambiguous and repeated rows."""
    wanted = {k: {g[k] for g in given if k in g} for k in ID_COLUMNS}
    cases = Case.objects.select_related("patient")
    by_id = {str(c.pk): [c] for c in cases.filter(pk__in=[int(v) for v in wanted["case_id"] if is_case_id(v)])}
    by_number = {c.case_number: [c] for c in cases.filter(case_number__in=wanted["case_number"])}
    by_mrn: dict[str, list[Case]] = {}
    for c in cases.filter(patient__mrn__in=wanted["mrn"]).order_by("pk"):
        by_mrn.setdefault(c.patient.mrn, []).append(c)
    lookups = {"case_id": by_id, "case_number": by_number, "mrn": by_mrn}

    first_seen: dict[int, Row] = {}
    for row, ids in zip(rows, given, strict=True):
        if row.problem:
            continue
        candidates = None
        if "mrn" in ids and len(ids) > 1:
            # The MRN checks the case the other column names (the old files: id + medical_record_number).
            # The message never shows the MRN.
            named = {k: v for k, v in ids.items() if k != "mrn"}
            column, value = next(iter(named.items()))
            found = lookups[column].get(value, [])
            if found and found[0].patient.mrn != ids["mrn"]:
                row.problem = (
                    f"the MRN on line {row.line or '?'} does not match the patient of case "
                    f"{found[0].case_number} ({column} {value[:40]!r}); check the file (nothing sent)"
                )
                continue
        for column, value in ids.items():
            found = lookups[column].get(value, [])
            if not found:
                row.problem = f"no case with {column} {value[:40]!r}"
                break
            pks = {c.pk for c in found}
            candidates = found if candidates is None else [c for c in candidates if c.pk in pks]
            if not candidates:
                row.problem = f"{' and '.join(f'{k} {v[:40]!r}' for k, v in ids.items())} name different cases"
                break
        if row.problem:
            continue
        if len(candidates) > 1:
            row.problem = (
                f"mrn {ids['mrn'][:40]!r} has {len(candidates)} cases "
                f"({', '.join(c.case_number for c in candidates)}); give the case_id or case_number"
            )
            continue
        row.case = candidates[0]
        earlier = first_seen.setdefault(row.case.pk, row)
        if earlier is not row:
            where = f"on line {earlier.line}" if earlier.line else "earlier in the list"
            row.problem = f"duplicate: case {row.case.case_number} is already {where}"


def default_rows(action) -> list[Row]:
    return [
        Row(label=f"case id {case.pk}", case=case, explicit=False)
        for case in action.default_selection().select_related("patient").order_by("pk")
    ]
