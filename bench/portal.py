"""Figure 5: the staff case list (/staff/) with 10,000 cases against the same list with 100.

The page is rendered through the Django test Client, logged in as a staff user, and
timed end to end (middleware, session, the view's queries, the template):

- the number of queries each page makes must not depend on how many cases there are
  (counted with CaptureQueriesContext; both counts are reported);
- the median time with `large` cases over the median with `small` must stay <= 1.5.

Cases are written with bulk_create, each with its patient and a prescription from one of
a few dozen providers (what the list shows), spread over every state and the last year,
a few of the unfinished ones needing attention. Besides the plain first page, the list
is measured with a search term (part of a last name) and with a state filter, each
matching enough cases to fill the page at both sizes, and sorted two ways (oldest waiting
first; by state in workflow order). The
measurements alternate between the two sizes in rounds (the extra cases are deleted and
written again, then VACUUM ANALYZE as autovacuum would), so a change in the machine's
load falls on both sizes alike.
"""

import random
import statistics
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from align_workflow.cases.models import Case, Patient, Prescription, Provider
from states import align_case as wf

from .report import Row

LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Nguyen",
]
FIRST_NAMES = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "James",
    "Isabella",
    "Lucas",
    "Mia",
    "Mason",
    "Amelia",
    "Ethan",
    "Harper",
    "Logan",
    "Evelyn",
    "Aiden",
    "Abigail",
    "Jacob",
]
# Most cases of a clinic that has used the workflow for a while have finished it.
STATE_WEIGHTS = {
    wf.ELIGIBLE: 3,
    wf.PATIENT_CREATED: 1,
    wf.ORDER_CREATED: 1,
    wf.ASSETS_UPLOADED: 3,
    wf.PLAN_RECEIVED: 4,
    wf.REVISION_REQUESTED: 2,
    wf.PROVIDER_APPROVED: 2,
    wf.ACCEPTED: 6,
    wf.SHIPPING: 60,
    wf.CANCELLED: 18,
}
PROVIDERS = 40
# Both sizes must show a full page of 25 rows, or the baseline would render fewer rows:
# "ez" is in a quarter of the last names (Rodriguez, Martinez, Hernandez, Lopez, Gonzalez);
# shipping is the most common state.
SEARCH_TERM = "ez"
STATE_FILTER = wf.SHIPPING
PAGES = {
    "first page": {},
    f"search '{SEARCH_TERM}'": {"q": SEARCH_TERM},
    f"state {STATE_FILTER}": {"state": STATE_FILTER},
    "oldest waiting first": {"sort": "waiting"},
    "sorted by state": {"sort": "state"},
}


def _providers():
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"bench-provider-{i}") for i in range(PROVIDERS)])
    return Provider.objects.bulk_create([Provider(user=u, account_name=f"Practice {i}") for i, u in enumerate(users)])


def _add_cases(start, stop, providers, rng):
    """Cases start..stop-1 with patient and prescription, in batches."""
    now = timezone.now()
    states, weights = list(STATE_WEIGHTS), list(STATE_WEIGHTS.values())
    for lo in range(start, stop, 2000):
        hi = min(stop, lo + 2000)
        patients = Patient.objects.bulk_create(
            [
                Patient(
                    mrn=f"MRN{i:07d}",
                    first_name=rng.choice(FIRST_NAMES),
                    last_name=LAST_NAMES[i % len(LAST_NAMES)],
                    date_of_birth="1990-01-01",
                    gender="F",
                    email=f"p{i}@example.com",
                )
                for i in range(lo, hi)
            ]
        )
        cases = []
        for i, patient in zip(range(lo, hi), patients, strict=True):
            # Every state from the first cases on, so that every page has rows at any size.
            state = wf.STATES[i] if i < len(wf.STATES) else rng.choices(states, weights)[0]
            changed = now - timedelta(seconds=rng.randrange(365 * 86400))
            cases.append(
                Case(
                    case_number=f"C{i:07d}",
                    patient=patient,
                    state=state,
                    state_changed_at=changed,
                    created=changed - timedelta(days=rng.randrange(1, 60)),
                    needs_attention=state in wf.NON_TERMINAL and rng.random() < 0.03,
                )
            )
        cases = Case.objects.bulk_create(cases)
        Prescription.objects.bulk_create(
            [Prescription(case=c, provider=providers[i % len(providers)]) for i, c in enumerate(cases)]
        )


def _remove_cases(start):
    """Delete cases numbered `start` and up, with their prescriptions and patients."""
    doomed = Case.objects.filter(case_number__gte=f"C{start:07d}")
    Prescription.objects.filter(case__in=doomed).delete()
    patients = list(doomed.values_list("patient_id", flat=True))
    doomed.delete()
    Patient.objects.filter(pk__in=patients).delete()
    _vacuum()


def _vacuum():
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:  # as autovacuum would after a bulk change
            cursor.execute("VACUUM ANALYZE cases_case, cases_patient, cases_prescription")


def _empty():
    """Remove the cases earlier benchmarks left, so the list holds exactly the cases made here.

    They have history, which the app never deletes (cases/records.py): the throwaway bench
    database is emptied as `flush` does it, with the tables that refer to the cases."""
    from django.core.management.color import no_style

    tables = [Case._meta.db_table, Patient._meta.db_table]
    with connection.cursor() as cursor:
        for statement in connection.ops.sql_flush(no_style(), tables, allow_cascade=True):
            cursor.execute(statement)


def _address(client, url, params):
    """The page's address: a search (q) is POSTed and answered with its opaque search id."""
    if "q" not in params:
        return url, params
    response = client.post(url, params, secure=True)
    assert response.status_code == 302, response.status_code
    return response["Location"], {}


def _sql_of(client, url, params):
    """The SQL of one GET url?params (over HTTPS: the production settings redirect anything else)."""
    for _ in range(3):  # warm up: template loading, session, connection
        assert client.get(url, params, secure=True).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params, secure=True)
    assert response.status_code == 200
    return [q["sql"] for q in queries.captured_queries], response.content.decode()


def _times(client, url, params, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        response = client.get(url, params, secure=True)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200
    return times


def run(scale=1.0):
    large = max(100, int(10000 * scale))
    small = max(10, int(100 * scale))
    rounds = 5 if scale >= 0.1 else 1
    per_round = max(5, int(12 * min(scale, 1.0)))
    rng = random.Random(5)

    staff = get_user_model().objects.create_user("bench-staff", password="x", is_staff=True)
    client = Client()
    client.force_login(staff)
    url = reverse("portals:staff_cases")
    providers = _providers()
    _empty()

    # Rounds alternate between the two sizes (the extra cases are deleted and written
    # again), so that a change in the machine's load falls on both alike.
    _add_cases(0, small, providers, rng)
    _vacuum()
    sql = {"small": {}, "large": {}}
    times = {size: {name: [] for name in PAGES} for size in sql}
    for r in range(rounds):
        for size in ("small", "large"):
            if size == "large":
                _add_cases(small, large, providers, rng)
                _vacuum()
            for name, params in PAGES.items():
                page_url, params = _address(client, url, params)
                if r == 0:
                    sql[size][name], html = _sql_of(client, page_url, params)
                    if name == "first page":
                        count = small if size == "small" else large
                        assert f"{count} cases in the Align workflow" in html
                times[size][name] += _times(client, page_url, params, per_round)
            if size == "large" and r < rounds - 1:
                _remove_cases(small)

    ms = lambda t: f"{t * 1000:.1f} ms"  # noqa: E731
    rows = []
    for name in PAGES:
        q_small, q_large = len(sql["small"][name]), len(sql["large"][name])
        rows.append(
            Row(
                "5 portal",
                f"/staff/ {name}: queries, {large} vs {small} cases",
                str(q_large),
                str(q_small),
                None,
                "equal",
                q_large == q_small,
            )
        )
        t_small, t_large = statistics.median(times["small"][name]), statistics.median(times["large"][name])
        ratio = t_large / t_small
        rows.append(
            Row(
                "5 portal",
                f"/staff/ {name}: median of {rounds * per_round}, {large} vs {small} cases",
                ms(t_large),
                ms(t_small),
                ratio,
                "<= 1.5",
                ratio <= 1.5,
            )
        )
    return rows
