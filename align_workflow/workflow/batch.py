"""Batch operations on many cases: what `manage.py align_batch` does.

    rows = batch.rows_from_csv(path, action)          # or rows_from_ids([1, 2]) / default_rows(action)
    outcomes = batch.run(action, rows, dry_run=False, concurrency=4, on_outcome=print)

Every case goes through the engine and the outbound service, exactly as a click in the
staff portal would: the state, the actor, the flag and the effect's own input are
checked first (a case that fails a check is *skipped* with the reason, and nothing is
sent or written for it), every call is an OutboundAttempt with its idempotency key,
every outcome a case note and every transition a StateLog row.

Who acts:

- `accept` (accept_clincheck) and `upload-assets` (upload_assets) run as the system
  (by=None), which the workflow table allows for both;
- `revise` (request_revision) is a provider's action: it is sent as the provider on the
  case's prescription, on their behalf, and a case note says so. A revision request
  whose call failed is re-sent as recorded (the provider's own comments, the same
  idempotency key) through `retry_case`; only a case with no failed request for its
  pending plan is sent the file's comments;
- `retry-failed` is the staff portal's Retry button: the case's last failed call is
  re-sent with its key, as whoever first sent it.

Calls run in this process (never queued to Celery, whatever ALIGN_EXECUTION says), up
to `concurrency` at a time in threads, each case in its own thread call; each thread
keeps one database connection for the run, and they are closed when it ends.
"""

from __future__ import annotations

import csv
import getpass
import io
import logging
import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from align_workflow.cases.models import Case, CaseAsset, CaseNote, Prescription, TreatmentPlan
from states import align_case as wf

from . import effects as effect_registry
from . import outbound
from .align_effects import BATCH_SENDER
from .connections import ThreadConnections
from .models import OutboundAttempt

logger = logging.getLogger(__name__)

AttemptStatus = OutboundAttempt.Status

ID_COLUMNS = ("case_id", "case_number", "mrn")
COMMENTS_COLUMN = "comments"
# The old ad-hoc scripts' files: `id,medical_record_number` (acceptance) and
# `id,medical_record_number,body,comment` (revisions). Their names are read as ours.
OLD_NAMES = {"id": "case_id", "medical_record_number": "mrn", "comment": COMMENTS_COLUMN, "body": COMMENTS_COLUMN}
COLUMN_MEANINGS = {"case_id": "the case id", "case_number": "the case number",
                   "mrn": "the MRN, checked against the case", COMMENTS_COLUMN: "the revision comment"}
# The old scripts' default when a revision row has no comment; sent as the batch's own request.
DEFAULT_COMMENTS = "Revision Requested."
DONE, SKIPPED, FAILED, WOULD_DO = "done", "skipped", "failed", "would_do"
BUSY = "in_progress"  # another process holds the case (e.g. a run killed mid-call, until its lease ends)
OUTCOMES = (DONE, SKIPPED, FAILED, WOULD_DO, BUSY)
BUSY_WORDS = "in progress elsewhere"
REPORT_COLUMNS = ("line", "case_id", "case_number", "mrn", "action", "outcome", "detail")
_FAILED_STATUSES = (AttemptStatus.FAILED_RETRYABLE, AttemptStatus.FAILED_PERMANENT, AttemptStatus.SKIPPED)


class BatchInputError(Exception):
    """The selection cannot be used at all (missing file, not a CSV, no id column, ...).
    Nothing was sent."""


class Skip(Exception):
    """This case is not sent; the message says why."""


class Busy(Skip):
    """This case is not sent because another process is sending it right now."""


def is_case_id(text) -> bool:
    """ASCII digits only: str.isdigit() also says yes to '²' or '١٢', which int() refuses or
    reads as another number."""
    return isinstance(text, str) and text.isascii() and text.isdigit()


# --- What was selected -------------------------------------------------------------------


@dataclass
class Row:
    """One case to work on, as the selection named it."""

    label: str                   # "line 4", "case id 17": where it came from, for messages
    case: Case | None = None
    line: int | None = None      # the CSV line
    comments: str | None = None  # revise: the file's comments ("" or None: the default)
    problem: str | None = None   # why this row is skipped without looking at a case
    explicit: bool = True        # named by the user (a file, --case-ids), not by the default selection

    @property
    def case_number(self):
        return self.case.case_number if self.case else ""


@dataclass
class RowOutcome:
    row: Row
    action: str
    outcome: str
    detail: str = ""
    remark: str = ""  # something the user should know about how it was done (also in `detail`)

    @property
    def case_id(self):
        return self.row.case.pk if self.row.case else None

    @property
    def case_number(self):
        return self.row.case_number

    @property
    def mrn(self):
        return self.row.case.patient.mrn if self.row.case else ""

    def line_text(self, action) -> str:
        """The one-line outcome shown per case: "C000123 accepted", "C000124 skipped: already accepted"."""
        who = self.case_number or self.row.label
        if self.outcome == DONE:
            return (f"{who} {action.done_word}" + (f": {self.detail}" if action.detail_when_done else "")
                    + (f" ({self.remark})" if self.remark and not action.detail_when_done else ""))
        if self.outcome == WOULD_DO:
            return f"{who} would {self.detail}"
        if self.outcome == BUSY:
            return f"{who} {BUSY_WORDS}: {self.detail}"
        return f"{who} {self.outcome}: {self.detail}"


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
        raise BatchInputError(f"{path} is empty: expected a header row naming a case_id, case_number or mrn "
                              "column, then one row per case.")
    if b"\x00" in data:
        raise BatchInputError(f"{path} is not a CSV file (it holds binary data; save a spreadsheet as CSV first).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchInputError(f"{path} is not a CSV file: byte {exc.start} is not UTF-8 text "
                              "(save it as CSV, UTF-8).") from None


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
        readable = ", ".join(allowed) + "".join(f", {old} (= {new})" for old, new in OLD_NAMES.items()
                                                 if new in allowed)
        raise BatchInputError(
            f"{path}: unknown column(s) {shown}; this command reads only {readable}. "
            "Remove or rename them (nothing was sent)."
        )
    twice = sorted({n for n in named if named.count(n) > 1})
    doubled = sorted({_canonical(n) for n in named if _canonical(n) != COMMENTS_COLUMN
                      and [_canonical(m) for m in named].count(_canonical(n)) > 1})
    if twice or doubled:
        raise BatchInputError(f"{path}: column(s) {', '.join(twice or doubled)} appear more than once"
                              + ("" if twice else " (under an old and a new name)") + ".")
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
        return None, (f"line {line} has different text under {' and '.join(given)}: keep the revision comment "
                      "in one of them")
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
        extra = cells[len(names):]
        nameless = [c for name, c in zip(names, cells, strict=False) if not name and c.strip()]
        if any(c.strip() for c in extra) or nameless:
            row.problem = (f"line {line} has more values than the header has named columns "
                           f"({len(cells)} values, {len([n for n in names if n])} columns)")
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
        raise BatchInputError(f"--case-ids: {', '.join(repr(b[:40]) for b in bad)} is not a case id "
                              "(case ids are whole numbers; for case numbers or MRNs use --csv).")
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
                row.problem = (f"the MRN on line {row.line or '?'} does not match the patient of case "
                               f"{found[0].case_number} ({column} {value[:40]!r}); check the file (nothing sent)")
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
            row.problem = (f"mrn {ids['mrn'][:40]!r} has {len(candidates)} cases "
                           f"({', '.join(c.case_number for c in candidates)}); give the case_id or case_number")
            continue
        row.case = candidates[0]
        earlier = first_seen.setdefault(row.case.pk, row)
        if earlier is not row:
            where = f"on line {earlier.line}" if earlier.line else "earlier in the list"
            row.problem = f"duplicate: case {row.case.case_number} is already {where}"


def default_rows(action) -> list[Row]:
    return [Row(label=f"case id {case.pk}", case=case, explicit=False)
            for case in action.default_selection().select_related("patient").order_by("pk")]


# --- The actions ------------------------------------------------------------------------


@dataclass
class Plan:
    """What will be done for one case (shown as is by --dry-run)."""

    description: str                  # "accept the ClinCheck as the system (screenshot asset 12)"
    by: object = None                 # the acting user (None: the system)
    params: dict = field(default_factory=dict)
    retry: bool = False               # re-send the step's last failed call (retry_case) instead of firing anew
    step: str | None = None           # the step retried
    note: str = ""                    # the case note written when it is sent
    remark: str = ""                  # told to the user with the outcome


def _words(state):
    return wf.state_label(state)


def _who(by):
    return "the system" if by is None else f"user {by.get_username()}"


def _operator():
    try:
        return getpass.getuser()
    except Exception:  # no user name for this uid (containers)
        return os.environ.get("USER") or f"uid {os.getuid()}"


def _refuse_if_busy(case):
    busy = outbound.open_attempt(case.pk)
    step = busy.step if busy else ""
    if not step and case.busy_with and case.busy_until and case.busy_until > timezone.now():
        step = case.busy_with
    if step:
        raise Busy(f"{wf.trigger_label(step)} is being sent to Align for this case right now by another "
                   "process (or one that stopped mid-call, until its lease ends); run again later")


def _check_engine(case, trigger, by, action):
    """The engine's checks (state, actor, flag, guard), writing nothing; Skip with a short reason."""
    from .engine import TransitionNotAllowed, check

    try:
        check(case, trigger, by=by)
    except TransitionNotAllowed as exc:
        if exc.code == "wrong_state" and action is not None:
            raise Skip(action.wrong_state_reason(case)) from None
        raise Skip(str(exc)) from None


def _check_input(case, trigger, by, params):
    """The effect's own check of its input (it may add prepared values to `params`)."""
    effect = effect_registry.get(trigger)
    if effect.check:
        try:
            effect.check(case, by, params)
        except effect_registry.EffectInputError as exc:
            raise Skip(str(exc)) from None


class Action:
    name = ""
    trigger = ""
    done_word = ""          # "[3/10] C000123 accepted"
    already = ""            # the skip reason when the work is done already
    done_states: tuple = ()
    selection_description = ""
    takes_comments = False
    detail_when_done = False  # say what was done on the case's line

    def default_selection(self) -> QuerySet:
        raise NotImplementedError

    def wrong_state_reason(self, case) -> str:
        if case.state in self.done_states:
            now = "" if case.state == wf.BY_TRIGGER[self.trigger].dest else f" (the case is now {_words(case.state)})"
            return self.already + now
        if case.state == wf.CANCELLED:
            return "the case is cancelled"
        sources = " or ".join(_words(s) for s in wf.BY_TRIGGER[self.trigger].source)
        return f"the case is {_words(case.state)}; {self.name} needs {sources}"

    def plan(self, case, row) -> Plan:
        raise NotImplementedError

    def note(self, text):
        return f"align_batch {self.name} (run by {_operator()}): {text}"


class Accept(Action):
    name = "accept"
    trigger = "accept_clincheck"
    done_word = "accepted"
    already = "already accepted"
    done_states = (wf.ACCEPTED, wf.SHIPPING)
    selection_description = "provider approved, aligners purchased, acceptance screenshot stored"

    def default_selection(self):
        screenshot = CaseAsset.objects.filter(case=OuterRef("pk"), kind=CaseAsset.Kind.CCACCEPTSCREEN, removed=False)
        return Case.objects.filter(state=wf.PROVIDER_APPROVED, aligners_purchased_at__isnull=False).filter(
            Exists(screenshot))

    def plan(self, case, row):
        _check_engine(case, self.trigger, None, self)
        if case.aligners_purchased_at is None:
            raise Skip("no aligner purchase is recorded for this case")
        params = {}
        _check_input(case, self.trigger, None, params)
        return Plan(f"accept the ClinCheck as the system (screenshot asset {params['screenshot_asset_id']})",
                    by=None, note=self.note("sending Accept ClinCheck as the system (aligners purchased)."))


class UploadAssets(Action):
    name = "upload-assets"
    trigger = "upload_assets"
    done_word = "assets uploaded"
    already = "assets already uploaded"
    done_states = (wf.ASSETS_UPLOADED, wf.PLAN_RECEIVED, wf.REVISION_REQUESTED, wf.PROVIDER_APPROVED,
                   wf.ACCEPTED, wf.SHIPPING)
    selection_description = "order created, no call to Align in flight"

    def default_selection(self):
        open_call = OutboundAttempt.objects.filter(case=OuterRef("pk"), status__in=OutboundAttempt.OPEN,
                                                   claimed_until__gt=timezone.now())
        return Case.objects.filter(state=wf.ORDER_CREATED).exclude(Exists(open_call))

    def plan(self, case, row):
        _check_engine(case, self.trigger, None, self)
        if not case.align_pid:
            raise Skip("the case has no Align patient id (pId)")
        return Plan("upload the assets as the system", by=None,
                    note=self.note("sending Upload Assets as the system."))


def _last_revision(case):
    """The case's last revision request, if its call did not go through."""
    last = (OutboundAttempt.objects.filter(case_id=case.pk, step="request_revision").select_related("by")
            .order_by("-id").first())
    return None if last is None or last.status == AttemptStatus.SUCCEEDED else last


class Revise(Action):
    name = "revise"
    trigger = "request_revision"
    done_word = "revision requested"
    already = "revision already requested"
    done_states = (wf.REVISION_REQUESTED,)
    selection_description = "plan received, the provider's revision request failed to reach Align"
    takes_comments = True

    def default_selection(self):
        last = OutboundAttempt.objects.filter(case=OuterRef("pk")).order_by("-id")
        return Case.objects.filter(state=wf.PLAN_RECEIVED).annotate(
            last_step=last.values("step")[:1], last_status=last.values("status")[:1]
        ).filter(last_step="request_revision", last_status__in=_FAILED_STATUSES)

    def plan(self, case, row):
        prescription = Prescription.objects.filter(case_id=case.pk).select_related("provider__user").first()
        if prescription is None:
            raise Skip("the case has no prescription, so no provider to act for")
        provider = prescription.provider.user
        _check_engine(case, self.trigger, provider, self)
        version = TreatmentPlan.objects.filter(case_id=case.pk).order_by("-version").values_list(
            "version", flat=True).first() or 0
        failed = _last_revision(case)
        if failed is not None and int((failed.params or {}).get("plan_version") or 0) == version:
            if failed.by_id != provider.pk:
                raise Skip("the failed revision request was made by someone who is not the case's provider now")
            _check_input(case, self.trigger, provider, dict(failed.params))
            remark = ""
            if row.comments and row.comments.strip() != failed.params.get("comments"):
                remark = "the file's comments were not used: the provider's own were re-sent"
            return Plan(
                f"re-send the failed revision request for plan version {version} on behalf of provider "
                f"{provider.get_username()} (the provider's comments, the same key)"
                + (f"; {remark.replace('were', 'are')}" if remark else ""),
                by=provider, retry=True, step=self.trigger, remark=remark,
                note=self.note(f"re-sending the failed Request Revision for plan version {version} on behalf of "
                               f"the case's provider ({provider.get_username()}), with the provider's comments "
                               "and the same idempotency key."),
            )
        if failed is not None:
            raise Skip(f"its failed revision request was about plan version "
                       f"{failed.params.get('plan_version') or '?'}, but version {version} is waiting now, "
                       "for the provider to review")
        if not row.explicit:
            raise Skip("no failed revision request to re-send")
        if not row.comments:
            # The old scripts' default: the batch's words, not the provider's. Only the provider
            # may request a revision, so it is still sent on the provider's behalf, but recorded
            # (history, attempt, plan page) as align_batch's default comment.
            params = {"comments": DEFAULT_COMMENTS, "sent_by": BATCH_SENDER}
            _check_input(case, self.trigger, provider, params)
            return Plan(
                f"request a revision of plan version {version} with align_batch's default comment "
                f"{DEFAULT_COMMENTS!r} (the file gave none), on behalf of provider {provider.get_username()}",
                by=provider, params=params,
                note=self.note(f"sending Request Revision for plan version {version} with the old scripts' default "
                               f"comment {DEFAULT_COMMENTS!r} (the file gave none; not the provider's words), on "
                               f"behalf of the case's provider ({provider.get_username()})."),
            )
        params = {"comments": row.comments}
        _check_input(case, self.trigger, provider, params)
        return Plan(
            f"request a revision of plan version {version} on behalf of provider {provider.get_username()}",
            by=provider, params=params,
            note=self.note(f"sending Request Revision for plan version {version} on behalf of the case's "
                           f"provider ({provider.get_username()})."),
        )


class RetryFailed(Action):
    name = "retry-failed"
    trigger = ""
    done_word = "retried"
    detail_when_done = True
    selection_description = "every case that needs attention"

    def default_selection(self):
        return Case.objects.filter(needs_attention=True)

    def plan(self, case, row):
        last = OutboundAttempt.objects.filter(case_id=case.pk).select_related("by").order_by("-id").first()
        if last is None:
            raise Skip("no call to Align has been made for this case, so there is nothing to retry")
        if last.status == AttemptStatus.SUCCEEDED:
            raise Skip(f"nothing to retry: its last call ({wf.trigger_label(last.step)}) succeeded")
        label = wf.trigger_label(last.step)
        if case.state not in wf.BY_TRIGGER[last.step].source:
            raise Skip(f"its last failed call ({label}) no longer applies: the case is {_words(case.state)}")
        _check_engine(case, last.step, last.by, None)
        _check_input(case, last.step, last.by, dict(last.params or {}))
        return Plan(f"retry {label} (attempt {last.attempt}, {last.get_status_display().lower()}) as "
                    f"{_who(last.by)}, with the same key", by=last.by, retry=True, step=None,
                    note=self.note(f"retrying {label} as {_who(last.by)}."))


ACTIONS = {a.name: a for a in (Accept(), Revise(), UploadAssets(), RetryFailed())}


# --- Running ------------------------------------------------------------------------------


def _scrubbed(exc, case):
    return outbound.scrub(f"{type(exc).__name__}: {exc}", case.patient)[:500]


def _plan_for(action, row) -> tuple[Case, Plan]:
    try:
        case = Case.objects.select_related("patient").get(pk=row.case.pk)  # as it is now, not as selected
    except Case.DoesNotExist:
        raise Skip("the case no longer exists") from None
    row.case = case
    _refuse_if_busy(case)
    return case, action.plan(case, row)


def _execute(action, case, plan) -> tuple[str, str]:
    """Send one case as planned: (outcome, detail)."""
    from .effects import EffectFailed
    from .engine import TransitionNotAllowed, fire

    if plan.retry:
        try:
            result = outbound.retry_case(case, by=None, step=plan.step, here=True, note=plan.note)
        except TransitionNotAllowed as exc:
            return (BUSY if exc.code == "in_progress" else SKIPPED), str(exc)
        if result.ok and not result.queued:
            return DONE, result.message
        if result.queued:
            return BUSY, "another process is sending it"
        if result.attempt_id is None:   # refused before anything was sent
            return SKIPPED, result.error
        return FAILED, result.message
    CaseNote.objects.create(case_id=case.pk, text=plan.note)
    try:
        log = fire(case, action.trigger, by=plan.by, **plan.params)
    except TransitionNotAllowed as exc:
        if exc.code == "in_progress":
            return BUSY, str(exc)
        return SKIPPED, (action.wrong_state_reason(case) if exc.code == "wrong_state" else str(exc))
    except EffectFailed as exc:  # AlignCallFailed among them: the attempt and its note are recorded
        return FAILED, str(exc)
    return DONE, log.description or action.done_word


def process(action, row, *, dry_run=False) -> RowOutcome:
    """Check one row's case and, unless `dry_run`, send it. Never raises for one case's trouble."""
    if row.problem:
        return RowOutcome(row, action.name, SKIPPED, row.problem)
    case = row.case
    try:
        case, plan = _plan_for(action, row)
        if dry_run:
            return RowOutcome(row, action.name, WOULD_DO, plan.description)
        outcome, detail = _execute(action, case, plan)
    except Busy as exc:
        return RowOutcome(row, action.name, BUSY, str(exc))
    except Skip as exc:
        return RowOutcome(row, action.name, SKIPPED, str(exc))
    except Exception as exc:  # one case's unexpected error must not stop the others
        logger.exception("align_batch %s: case %s failed", action.name, getattr(case, "pk", None))
        return RowOutcome(row, action.name, FAILED, _scrubbed(exc, case))
    if plan.remark and outcome not in (SKIPPED, BUSY):
        return RowOutcome(row, action.name, outcome, f"{detail} ({plan.remark})", remark=plan.remark)
    return RowOutcome(row, action.name, outcome, detail)


def _process_in_thread(action, row, dry_run, held):
    try:
        return process(action, row, dry_run=dry_run)
    finally:
        held.keep()


def effective_concurrency(requested: int) -> tuple[int, str]:
    """The number of cases sent at once, and why it differs from `requested` ("" when it does not)."""
    requested = max(1, int(requested))
    if requested > 1 and connection.vendor == "sqlite":
        return 1, ("SQLite lets one process write at a time, so cases are sent one at a time "
                   f"(--concurrency {requested} needs PostgreSQL).")
    return requested, ""


def run(action, rows: list[Row], *, dry_run=False, concurrency=1,
        on_outcome: Callable[[RowOutcome], None] | None = None) -> tuple[list[RowOutcome], bool]:
    """Process every row, up to `concurrency` at once. Returns the outcomes in the rows'
    order and whether the run was interrupted (Ctrl-C: cases not started are reported
    as skipped; the ones in flight finish)."""
    outcomes: dict[int, RowOutcome] = {}
    report = on_outcome or (lambda outcome: None)
    interrupted = False
    try:
        todo = [index for index, row in enumerate(rows) if not row.problem]
        if concurrency <= 1 or len(todo) <= 1:
            for index, row in enumerate(rows):
                outcomes[index] = process(action, row, dry_run=dry_run)
                report(outcomes[index])
        else:
            for index, row in enumerate(rows):
                if row.problem:  # nothing to look up or send: reported at once
                    outcomes[index] = process(action, row, dry_run=dry_run)
                    report(outcomes[index])
            lock = threading.Lock()
            held = ThreadConnections()
            pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="align-batch")
            try:
                futures = {pool.submit(_process_in_thread, action, rows[i], dry_run, held): i for i in todo}
                for future in as_completed(futures):
                    index = futures[future]
                    with lock:
                        outcomes[index] = future.result()
                        report(outcomes[index])
            except KeyboardInterrupt:
                pool.shutdown(wait=True, cancel_futures=True)
                for future, index in futures.items():
                    if index not in outcomes and future.done() and not future.cancelled():
                        outcomes[index] = future.result()
                        report(outcomes[index])
                raise
            finally:
                pool.shutdown(wait=True)
                held.close_all()
    except KeyboardInterrupt:
        interrupted = True
        for index, row in enumerate(rows):
            if index not in outcomes:
                outcomes[index] = RowOutcome(row, action.name, SKIPPED, "not run: the batch was interrupted")
    return [outcomes[i] for i in range(len(rows))], interrupted


# --- The report ------------------------------------------------------------------------------


def _cell(value):
    text = "" if value is None else str(value)
    # A spreadsheet would run a cell starting with one of these as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def write_report(handle, outcomes: list[RowOutcome]) -> None:
    writer = csv.writer(handle)
    writer.writerow(REPORT_COLUMNS)
    for o in outcomes:
        writer.writerow([_cell(v) for v in (o.row.line, o.case_id, o.case_number, o.mrn, o.action, o.outcome,
                                            o.detail)])


def counts(outcomes: list[RowOutcome]) -> dict[str, int]:
    return {name: sum(1 for o in outcomes if o.outcome == name) for name in OUTCOMES}
