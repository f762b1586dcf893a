"""Read queries for the portals. Each list is a fixed number of queries however many
cases it shows (select_related / annotate, never a query per row)."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from align_workflow.cases.models import Case, Patient, Prescription, workflow_order
from align_workflow.workflow.align_effects import BATCH_REVISION_PREFIX
from align_workflow.workflow.history import state_logs
from states import align_case as wf


def stuck_before() -> datetime:
    """A non-terminal case whose state last changed before this moment is stuck."""
    return timezone.now() - timedelta(seconds=settings.ALIGN_STUCK_AFTER_SECONDS)


def stuck_q() -> Q:
    return Q(state__in=wf.NON_TERMINAL, state_changed_at__lt=stuck_before())


def in_align_workflow() -> Q:
    """The cases in the Align workflow: those prescribed to the Align lab. Any other case
    (another lab, or no prescription yet) is outside it: not listed or counted with the
    Align cases; it enters at `eligible` when its lab becomes Align."""
    return Q(prescription__lab=Prescription.Lab.ALIGN)


# The orders a work queue can be sorted in (`?sort=`): a column ascending, or descending
# with a leading "-". Each has an index of its own (cases.Case.Meta.indexes), so the first
# page reads a page of index entries instead of sorting every case.
SORTS = {
    "state": (workflow_order().asc(), "state_changed_at", "id"),  # workflow order, oldest waiting first
    "-state": (workflow_order().desc(), "-state_changed_at", "-id"),
    "waiting": ("state_changed_at", "id"),  # oldest waiting first
    "-waiting": ("-state_changed_at", "-id"),  # newest first
    "case": ("case_number",),
    "-case": ("-case_number",),
}


def search_q(q: str) -> Q:
    """Every word of `q` in the case number, the MRN or the patient's name."""
    found = Q()
    for term in q.split():
        found &= term_q(term)
    return found


def staff_cases(*, q="", state="", attention=False, stuck=False, other_labs=False, sort=""):
    """The staff case list: needs attention first, then the most recently changed, unless
    `sort` names another order (SORTS).

    The Align workflow's cases only; `other_labs` lists, apart, the cases outside it."""
    cases = Case.objects.select_related("patient", "prescription__provider")
    cases = cases.exclude(in_align_workflow()) if other_labs else cases.filter(in_align_workflow())
    cases = cases.filter(search_q(q))
    if state:
        cases = cases.filter(state=state)
    if attention:
        cases = cases.filter(needs_attention=True)
    if stuck:
        cases = cases.filter(stuck_q())
    return cases.order_by(*SORTS.get(sort, ("-needs_attention", "-state_changed_at", "-id")))


def staff_cases_filtered(filters) -> QuerySet:
    """staff_cases() for a staff list form's cleaned data (the page and its CSV export)."""
    return staff_cases(
        q=filters.get("q", ""),
        state=filters.get("state", ""),
        attention=filters.get("attention", False),
        stuck=filters.get("stuck", False),
        other_labs=filters.get("other_labs", False),
        sort=filters.get("sort", ""),
    )


# pg_trgm indexes a string by its three-character pieces: a shorter term has none to look up.
TRIGRAM_LENGTH = 3


def term_q(term) -> Q:
    """Cases whose number, or whose patient's MRN, first or last name, contains `term`
    (any case).

    From three characters on, each side is its own subquery (`id IN (...) OR patient_id IN
    (...)`), which PostgreSQL answers from the trigram indexes (migration cases 0006) and
    probes while it walks the list's order, instead of comparing four columns of every
    case joined with its patient. A shorter term cannot use a trigram index; it is
    compared row by row as the list is walked, which stops at the page's end when the
    term is common."""
    if len(term) < TRIGRAM_LENGTH:
        return (
            Q(case_number__icontains=term)
            | Q(patient__mrn__icontains=term)
            | Q(patient__first_name__icontains=term)
            | Q(patient__last_name__icontains=term)
        )
    patients = Patient.objects.filter(
        Q(mrn__icontains=term) | Q(first_name__icontains=term) | Q(last_name__icontains=term)
    ).values("pk")
    return Q(pk__in=Case.objects.filter(case_number__icontains=term).values("pk")) | Q(patient__in=patients)


class CappedPaginator(Paginator):
    """Pages of a list whose count stops early: it counts at most `limit` + 1 rows (a
    sliced subquery, `SELECT COUNT(*) FROM (... LIMIT limit + 1)`), so a search matching
    thousands of cases costs about what one matching a few hundred does. `limit` is `cap`
    or the end of the page asked for, whichever is further, rounded up to whole pages; past
    it `more` is true, `count` is `limit` + 1 and the page after the last whole one exists,
    so the pages go on as far as the person goes. `known_count`, when given, is the exact
    count and nothing is counted."""

    def __init__(self, object_list, per_page, *, cap, page=1, known_count=None):
        super().__init__(object_list, per_page)
        try:
            number = max(1, int(page))
        except (TypeError, ValueError):
            number = 1
        pages = max(-(-cap // per_page), number)
        self.limit = pages * per_page
        self.full_pages = pages
        self.known_count = known_count

    @cached_property
    def count(self):
        if self.known_count is not None:
            return self.known_count
        return self.object_list[: self.limit + 1].count()

    @property
    def more(self):
        """True when the list has more rows than were counted."""
        return self.known_count is None and self.count > self.limit

    def page_links(self, number, *, around=2):
        """The pages to link to from page `number`: the first, the `around` pages either
        side of it and the last, with None for each gap ("…"). Past the count (`more`) the
        last page is not known: the links end with a gap after the pages near this one."""
        last = self.num_pages
        near = range(max(1, number - around), min(last, number + around) + 1)
        pages = sorted({1, *near} if self.more else {1, *near, last})
        links, previous = [], 0
        for n in pages:
            if n > previous + 1:
                links.append(None)
            links.append(n)
            previous = n
        if self.more:
            links.append(None)
        return links


@dataclass(frozen=True)
class StateCount:
    state: str
    meaning: str
    total: int
    stuck: int


def state_counts() -> list[StateCount]:
    """Cases per state and how many of them are stuck, in workflow order (one query).

    The query counts the old cases of every state and only the non-terminal ones are
    reported as stuck (the same as stuck_q()), so the database does not test each row's
    state against the list of non-terminal states (a third of this query's time)."""
    rows = (
        Case.objects.filter(in_align_workflow())
        .values("state")
        .annotate(total=Count("id"), old=Count("id", filter=Q(state_changed_at__lt=stuck_before())))
    )
    by_state = {r["state"]: r for r in rows}
    return [
        StateCount(
            s,
            wf.MEANINGS[s],
            by_state.get(s, {}).get("total", 0),
            by_state.get(s, {}).get("old", 0) if s in wf.NON_TERMINAL else 0,
        )
        for s in wf.STATES
    ]


@dataclass(frozen=True)
class ListCounts:
    states: list[StateCount]
    attention: int  # Align workflow cases needing attention
    outside: int  # cases outside the Align workflow


def list_counts() -> ListCounts:
    """What state_counts(), attention_count() and outside_workflow_count() count, from one
    scan of the cases (the staff list shows all three on every page)."""
    align = in_align_workflow()
    rows = Case.objects.values("state").annotate(
        total=Count("id", filter=align),
        old=Count("id", filter=align & Q(state_changed_at__lt=stuck_before())),
        attention=Count("id", filter=align & Q(needs_attention=True)),
        outside=Count("id", filter=~align),
    )
    by_state = {r["state"]: r for r in rows}
    states = [
        StateCount(
            s,
            wf.MEANINGS[s],
            by_state.get(s, {}).get("total", 0),
            by_state.get(s, {}).get("old", 0) if s in wf.NON_TERMINAL else 0,
        )
        for s in wf.STATES
    ]
    return ListCounts(
        states,
        sum(r["attention"] for r in by_state.values()),
        sum(r["outside"] for r in by_state.values()),
    )


def attention_count() -> int:
    return Case.objects.filter(in_align_workflow(), needs_attention=True).count()


def outside_workflow_count() -> int:
    """Cases not prescribed to Align (outside the Align workflow)."""
    return Case.objects.exclude(in_align_workflow()).count()


def provider_cases(user, *, q="", state="", sort=""):
    """A provider's own cases: the most recently changed first, unless `sort` names
    another order (SORTS); `q` searches them as the staff search does."""
    cases = (
        Case.objects.filter(prescription__provider__user=user)
        .filter(search_q(q))
        .select_related("patient")
        .annotate(plan_version=Max("treatment_plans__version"))
    )
    if state:
        cases = cases.filter(state=state)
    return cases.order_by(*SORTS.get(sort, ("-state_changed_at", "-id")))


def plans_waiting(user):
    """The provider's cases whose plan waits for their review, the longest waiting first."""
    return provider_cases(user, state=wf.PLAN_RECEIVED, sort="waiting")


def provider_case(user, pk):
    """One of the provider's own cases (DoesNotExist for anybody else's)."""
    return Case.objects.select_related("patient", "prescription__provider").get(
        pk=pk, prescription__provider__user=user
    )


def staff_case(pk):
    return Case.objects.select_related("patient", "prescription__provider__user", "photo_assessment").get(pk=pk)


@dataclass(frozen=True)
class RevisionComment:
    when: datetime
    text: str
    by_id: int | None
    by_batch: bool  # align_batch's default comment, sent on the provider's behalf: not their words


def revision_comments(case):
    """The earlier revision requests (from the case history, in full), oldest first."""
    return [
        RevisionComment(log.timestamp, log.description, log.by_id, log.description.startswith(BATCH_REVISION_PREFIX))
        for log in state_logs(case).filter(transition="request_revision")
        if log.description
    ]


def case_stamp(case) -> str:
    """Changes whenever anything shown about the case's progress changes (for polling)."""
    latest = (
        Case.objects.filter(pk=case.pk)
        .annotate(last_note=Max("notes__id"), last_plan=Max("treatment_plans__id"))
        .values_list("state", "state_changed_at", "busy_with", "needs_attention", "last_note", "last_plan")
        .first()
    )
    return "|".join(str(part) for part in latest or ())


def with_preview_links(plans):
    """Give each plan a `preview_link`: the preview's URL at Align, or our stored copy."""
    plans = list(plans)
    for plan in plans:
        asset = plan.preview
        plan.preview_link = (asset.url or (asset.file.url if asset.file else "")) if asset else ""
    return plans


def approval(case):
    """The StateLog row of the provider's approval of the current plan, if any."""
    return state_logs(case).filter(transition="approve_plan").order_by("-timestamp", "-id").first()
