"""Demo data: a staff user, two providers and a case in every workflow state.

Cases past `eligible` are placed in their state by writing the history a real case
would have (marked "demo data"): no call goes to Align. Running it again changes
nothing that is already there.
"""

import hashlib
import uuid
from datetime import date, timedelta

from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from django_fsm_log.models import StateLog
from waffle import get_waffle_flag_model

from align_workflow.cases.models import (
    AlignOrder,
    Case,
    CaseAsset,
    Patient,
    PhotoAssessment,
    Prescription,
    Provider,
    TreatmentPlan,
)
from states import align_case as wf

STAFF_LOGIN = ("staff", "demo-staff-pass")
PROVIDER_LOGINS = (
    ("dr.lee", "demo-provider-pass", "Lee Family Orthodontics"),
    ("dr.patel", "demo-provider-pass", "Patel Smile Studio"),
)
DEMO_LOGINS = [("staff (and admin)", *STAFF_LOGIN)] + [("provider", u, p) for u, p, _ in PROVIDER_LOGINS]

# The shortest legal path to each state, as triggers.
PATHS = {
    wf.ELIGIBLE: [],
    wf.PATIENT_CREATED: ["create_patient"],
    wf.ORDER_CREATED: ["create_patient", "create_order"],
    wf.ASSETS_UPLOADED: ["create_patient", "create_order", "upload_assets"],
    wf.PLAN_RECEIVED: ["create_patient", "create_order", "upload_assets", "receive_plan"],
    wf.REVISION_REQUESTED: ["create_patient", "create_order", "upload_assets", "receive_plan", "request_revision"],
    wf.PROVIDER_APPROVED: ["create_patient", "create_order", "upload_assets", "receive_plan", "approve_plan"],
    wf.ACCEPTED: [
        "create_patient",
        "create_order",
        "upload_assets",
        "receive_plan",
        "approve_plan",
        "accept_clincheck",
    ],
    wf.SHIPPING: [
        "create_patient",
        "create_order",
        "upload_assets",
        "receive_plan",
        "approve_plan",
        "accept_clincheck",
        "ship",
    ],
    wf.CANCELLED: ["create_patient", "create_order", "cancel"],
}

# number, state, provider index, what is special about it
DEMO_CASES = [
    ("DEMO-1001", wf.ELIGIBLE, 0, {}),
    ("DEMO-1002", wf.ELIGIBLE, 1, {"gender": "U"}),
    ("DEMO-1003", wf.ELIGIBLE, 0, {"lab": Prescription.Lab.IN_HOUSE}),
    ("DEMO-1004", wf.ELIGIBLE, 1, {"photos": PhotoAssessment.Status.PENDING}),
    ("DEMO-1005", wf.ELIGIBLE, 0, {"stl": 1}),
    ("DEMO-1006", wf.PATIENT_CREATED, 1, {}),
    ("DEMO-1007", wf.ORDER_CREATED, 0, {}),
    ("DEMO-1008", wf.ASSETS_UPLOADED, 1, {}),
    ("DEMO-1009", wf.PLAN_RECEIVED, 0, {}),
    ("DEMO-1010", wf.REVISION_REQUESTED, 1, {}),
    ("DEMO-1011", wf.PROVIDER_APPROVED, 0, {}),
    ("DEMO-1012", wf.ACCEPTED, 1, {}),
    ("DEMO-1013", wf.SHIPPING, 0, {}),
    ("DEMO-1014", wf.CANCELLED, 1, {}),
    ("DEMO-1015", wf.PLAN_RECEIVED, 1, {}),
]

FIRST = [
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Iris",
    "Jon",
    "Kara",
    "Liam",
    "Maya",
    "Noah",
    "Olive",
]
LAST = ["Nguyen", "Okafor", "Schmidt", "Rossi", "Kim", "Silva", "Haddad", "Novak", "Larsen", "Moreau"]


LOAD_ADDRESS = {
    "address_line1": "1 Load Test Way",
    "city": "Springfield",
    "state": "IL",
    "zip_code": "62701",
    "country": "US",
}


def _fake_id(*parts):
    return str(uuid.UUID(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:32]))


class Command(BaseCommand):
    help = "Create demo users and cases (idempotent). --eligible N adds N cases that pass every criterion."

    def add_arguments(self, parser):
        parser.add_argument("--eligible", type=int, default=0, help="also make sure N load-test cases exist")

    def handle(self, *args, eligible=0, **options):
        with transaction.atomic():
            staff, providers = self._users()
            self._flags()
            created = sum(
                self._demo_case(n, state, providers[p], extra, i) for i, (n, state, p, extra) in enumerate(DEMO_CASES)
            )
            loaded = self._load_cases(eligible, providers) if eligible else 0
        self.stdout.write(f"Demo data ready: {created} demo case(s) created, {loaded} load case(s) created.")
        self.stdout.write("Logins:")
        for role, user, password in DEMO_LOGINS:
            self.stdout.write(f"  {role:18} {user} / {password}")

    def _users(self):
        User = get_user_model()
        staff, made = User.objects.get_or_create(
            username=STAFF_LOGIN[0],
            defaults={"is_staff": True, "is_superuser": True, "first_name": "Sam", "last_name": "Staff"},
        )
        if made:
            staff.set_password(STAFF_LOGIN[1])
            staff.save()
        providers = []
        for username, password, account in PROVIDER_LOGINS:
            user, made = User.objects.get_or_create(username=username, defaults={"last_name": username[3:].title()})
            if made:
                user.set_password(password)
                user.save()
            provider, _ = Provider.objects.get_or_create(user=user, defaults={"account_name": account})
            providers.append(provider)
        return staff, providers

    def _flags(self):
        Flag = get_waffle_flag_model()
        for name in (wf.FLAG_INITIATE_ORDER, wf.FLAG_SET_ORDER_STATUS):
            Flag.objects.update_or_create(name=name, defaults={"everyone": True})

    def _patient(self, number, i, gender=None):
        mrn = "40" + number.split("-")[1]  # a clinic-style number: DEMO-1006 -> 401006
        patient, _ = Patient.objects.get_or_create(
            mrn=mrn,
            defaults={
                "first_name": FIRST[i % len(FIRST)],
                "last_name": LAST[i % len(LAST)],
                "date_of_birth": date(1980, 1, 1) + timedelta(days=397 * (i % 30)),
                "gender": gender or ("F" if i % 2 else "M"),
                "email": f"patient{i}@example.com",
                "phone": f"555-01{i % 100:02d}",
                "address_line1": f"{100 + i} Main St",
                "city": "Springfield",
                "state": "IL",
                "zip_code": "62701",
            },
        )
        return patient

    def _demo_case(self, number, state, provider, extra, i):
        if Case.objects.filter(case_number=number).exists():
            return 0
        case = Case.objects.create(case_number=number, patient=self._patient(number, i, extra.get("gender")))
        Prescription.objects.create(case=case, provider=provider, lab=extra.get("lab", Prescription.Lab.ALIGN))
        PhotoAssessment.objects.create(case=case, status=extra.get("photos", PhotoAssessment.Status.APPROVED))
        for kind in [CaseAsset.Kind.STL_UPPER, CaseAsset.Kind.STL_LOWER][: extra.get("stl", 2)]:
            self._stl(case, kind)
        if extra.get("stl") == 1:
            self._stl(case, CaseAsset.Kind.STL_LOWER, removed=True)
        self._walk(case, PATHS[state])
        return 1

    def _stl(self, case, kind, removed=False):
        name = f"{case.case_number}-{kind.lower()}.stl"
        CaseAsset.objects.create(
            case=case,
            kind=kind,
            filename=name,
            removed=removed,
            sha256=hashlib.sha256(name.encode()).hexdigest(),
            vault_id=_fake_id("vault", name),
            external_key=_fake_id("key", name),
        )

    def _walk(self, case, triggers):
        """Give the case the history a real case in that state would have."""
        if not triggers:
            return
        ct = ContentType.objects.get_for_model(Case)
        when = timezone.now() - timedelta(days=len(triggers) + 1)
        state = wf.INITIAL
        for trigger in triggers:
            dest = wf.BY_TRIGGER[trigger].dest
            when += timedelta(days=1)
            # The provider's own decisions are the provider's in the history (the plan page says "You").
            by = case.prescription.provider.user if trigger in ("request_revision", "approve_plan") else None
            StateLog.objects.create(
                timestamp=when,
                by=by,
                source_state=state,
                state=dest,
                transition=trigger,
                content_type=ct,
                object_id=case.pk,
                description="demo data",
            )
            self._side_data(case, trigger, when)
            state = dest
        Case.objects.filter(pk=case.pk).update(
            state=state,
            state_changed_at=when,
            align_pid=case.align_pid,
            carrier=case.carrier,
            tracking_number=case.tracking_number,
            shipped_at=case.shipped_at,
            cancel_reason=case.cancel_reason,
            aligners_purchased_at=case.aligners_purchased_at,
        )

    def _side_data(self, case, trigger, when):
        digits = case.case_number.split("-")[1]
        if trigger == "create_patient":
            case.align_pid = f"P{digits:0>7}"
        elif trigger == "upload_assets":
            for kind, n in ((AlignOrder.Kind.PRIMARY, 1), (AlignOrder.Kind.SECONDARY, 2)):
                AlignOrder.objects.create(
                    case=case,
                    sales_order_number=f"SO{digits}{n}",
                    order_kind=kind,
                    order_type="IAS",
                    p_id=case.align_pid,
                    align_created_at=when,
                )
        elif trigger == "receive_plan":
            TreatmentPlan.objects.create(
                case=case,
                plan_id=f"TP{digits}-1",
                version=1,
                sales_order_number=f"SO{digits}1",
                stages_upper=14,
                stages_lower=12,
                notes="Mild crowding; 14 upper and 12 lower stages.",
                received_at=when,
            )
        elif trigger == "approve_plan":
            self._screenshot(case, when)
        elif trigger == "accept_clincheck":
            case.aligners_purchased_at = when
        elif trigger == "ship":
            case.carrier, case.tracking_number, case.shipped_at = "UPS", f"1Z999AA1{digits}", when
        elif trigger == "cancel":
            case.cancel_reason = "Patient chose another treatment."

    def _screenshot(self, case, when):
        CaseAsset.objects.create(
            case=case,
            kind=CaseAsset.Kind.CCACCEPTSCREEN,
            filename="acceptance.jpg",
            vault_id=_fake_id("vault", case.pk),
            external_key=_fake_id("shot", case.pk),
            created=when,
        )

    def _load_cases(self, n, providers):
        existing = set(Case.objects.filter(case_number__startswith="LOAD-").values_list("case_number", flat=True))
        # Load patients made before every contact field was required get the demo's contact details.
        Patient.objects.filter(cases__case_number__startswith="LOAD-", phone="").update(phone="555-0100")
        Patient.objects.filter(cases__case_number__startswith="LOAD-", address_line1="").update(**LOAD_ADDRESS)
        wanted = [f"LOAD-{i:06d}" for i in range(1, n + 1)]
        missing = [number for number in wanted if number not in existing]
        if not missing:
            return 0
        # Everything Align requires (workflow.preflight.REQUIRED): these cases go through end to end.
        patients = Patient.objects.bulk_create(
            [
                Patient(
                    mrn="L" + number[5:],
                    first_name=FIRST[i % len(FIRST)],
                    last_name=LAST[i % len(LAST)],
                    date_of_birth=date(1990, 1, 1),
                    gender="F" if i % 2 else "M",
                    email=f"load{i}@example.com",
                    phone=f"555-{i % 10000:04d}",
                    **LOAD_ADDRESS,
                )
                for i, number in enumerate(missing)
            ],
            batch_size=1000,
        )
        patients = {p.mrn: p for p in Patient.objects.filter(mrn__in=["L" + n[5:] for n in missing])}
        Case.objects.bulk_create(
            [Case(case_number=number, patient=patients["L" + number[5:]]) for number in missing], batch_size=1000
        )
        cases = list(Case.objects.filter(case_number__in=missing))
        Prescription.objects.bulk_create(
            [Prescription(case=c, provider=providers[i % len(providers)]) for i, c in enumerate(cases)], batch_size=1000
        )
        PhotoAssessment.objects.bulk_create(
            [PhotoAssessment(case=c, status=PhotoAssessment.Status.APPROVED) for c in cases], batch_size=1000
        )
        assets = []
        for c in cases:
            for kind in (CaseAsset.Kind.STL_UPPER, CaseAsset.Kind.STL_LOWER):
                name = f"{c.case_number}-{kind.lower()}.stl"
                assets.append(
                    CaseAsset(
                        case=c,
                        kind=kind,
                        filename=name,
                        sha256=hashlib.sha256(name.encode()).hexdigest(),
                        vault_id=_fake_id("vault", name),
                        external_key=_fake_id("key", name),
                    )
                )
        CaseAsset.objects.bulk_create(assets, batch_size=2000)
        return len(cases)
