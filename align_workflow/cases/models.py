"""The clinic's side of a case: patient, prescription, photos, files, notes, and what
Align told us (orders and treatment plans). The Align workflow state lives on Case and
is changed only by align_workflow.workflow.fire()."""

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django_fsm_log.models import StateLog

from states import align_case as wf

from .records import AppendOnlyModel, RecordIsImmutable


class Patient(models.Model):
    class Gender(models.TextChoices):
        MALE = "M", "Male"
        FEMALE = "F", "Female"
        UNKNOWN = "U", "Unknown"

    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    date_of_birth = models.DateField()
    gender = models.CharField(max_length=1, choices=Gender.choices, default=Gender.UNKNOWN)
    mrn = models.CharField("medical record number", max_length=40, unique=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=100, blank=True)
    zip_code = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=2, default="US")

    def __str__(self):
        return f"MRN {self.mrn}"  # no names in logs or admin titles

    @property
    def full_name(self):
        return f"{self.first_name} {self.last_name}"


class Provider(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="provider")
    account_name = models.CharField(max_length=200)

    def __str__(self):
        return self.account_name


def workflow_order():
    """A case's state as its place in the workflow (eligible 0 … cancelled 9): the work
    queues sort by state in the order a case goes through them. The expression is also
    indexed as it stands (Case.Meta.indexes), so a list sorted by it reads the index."""
    return models.Case(
        *[models.When(state=state, then=models.Value(rank)) for rank, state in enumerate(wf.STATES)],
        default=models.Value(len(wf.STATES)),
        output_field=models.IntegerField(),
    )


class CaseQuerySet(models.QuerySet):
    def with_history(self):
        """The cases that have any history: state changes, notes, calls to or events from Align."""
        logged = StateLog.objects.filter(content_type=ContentType.objects.get_for_model(Case)).values("object_id")
        return self.filter(
            models.Q(pk__in=logged)
            | models.Q(notes__isnull=False)
            | models.Q(align_attempts__isnull=False)
            | models.Q(align_events__isnull=False)
        ).distinct()

    def delete(self):
        if self.with_history().exists():
            raise RecordIsImmutable(
                "A case with history cannot be deleted (its history would be lost): cancel it instead."
            )
        return super().delete()

    delete.queryset_only = True


class Case(models.Model):
    case_number = models.CharField(max_length=40, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="cases")
    state = models.CharField(
        "Align workflow state",
        max_length=40,
        choices=list(wf.STATE_LABELS.items()),
        default=wf.INITIAL,
        db_index=True,
        editable=False,
    )
    state_changed_at = models.DateTimeField(default=timezone.now, db_index=True, editable=False)
    # Align's patient id as returned by POST /patients.
    align_pid = models.CharField("Align patient id (pId)", max_length=40, blank=True, editable=False)
    # Set by the engine when an outbound call failed for good and a person must look.
    needs_attention = models.BooleanField(default=False, db_index=True, editable=False)
    attention_reason = models.TextField(blank=True, editable=False)
    # An outbound call in flight for this case: which trigger, and until when the claim holds.
    busy_with = models.CharField(max_length=40, blank=True, editable=False)
    busy_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The aligner purchase: when, and who or what reported it (recorded whatever the flags
    # say; the ClinCheck acceptance follows when every rule allows it).
    aligners_purchased_at = models.DateTimeField(null=True, blank=True)
    aligners_purchase_source = models.CharField(
        "purchase reported by",
        max_length=10,
        blank=True,
        editable=False,
        choices=[("staff", "staff (case page)"), ("shop", "the shop (API)"), ("batch", "align_batch")],
    )
    aligners_purchase_reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    aligners_order_reference = models.CharField("shop order reference", max_length=100, blank=True, editable=False)
    cancel_reason = models.TextField(blank=True, editable=False)
    carrier = models.CharField(max_length=60, blank=True, editable=False)
    tracking_number = models.CharField(max_length=80, blank=True, editable=False)
    shipped_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(default=timezone.now)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The staff case list's order (portals.selectors.staff_cases): its first page is
            # read from this index instead of sorting every case.
            models.Index(fields=["-needs_attention", "-state_changed_at", "-id"], name="case_staff_list_order"),
            # The work queues sorted by state (workflow order), then oldest waiting first.
            models.Index(workflow_order(), models.F("state_changed_at"), models.F("id"), name="case_state_order"),
            # Oldest (or newest) waiting first.
            models.Index(fields=["state_changed_at", "id"], name="case_waiting_order"),
            # The support analytics read the cases created in the last weeks (portals.metrics).
            models.Index(fields=["created"], name="case_created"),
        ]

    def __str__(self):
        return f"Case {self.case_number}"

    @property
    def has_history(self):
        return self.pk is not None and Case.objects.filter(pk=self.pk).with_history().exists()

    def delete(self, *args, **kwargs):
        if self.has_history:
            raise RecordIsImmutable(f"Case {self.case_number} has history and cannot be deleted: cancel it instead.")
        return super().delete(*args, **kwargs)

    def _newest_primary_order(self):
        return self.align_orders.filter(order_kind=AlignOrder.Kind.PRIMARY).order_by("-align_created_at", "-id").first()

    @property
    def align_sales_order_number(self):
        order = self._newest_primary_order()
        return order.sales_order_number if order else ""

    @property
    def align_patient_id(self):
        order = self._newest_primary_order()
        return (order.p_id if order and order.p_id else "") or self.align_pid

    @property
    def meaning(self):
        return wf.MEANINGS[self.state]

    @property
    def busy_label(self):
        """The call to Align being sent for this case right now ("Create Patient"), or ""."""
        return wf.trigger_label(self.busy_with) if self.busy_with else ""


class Prescription(models.Model):
    class Lab(models.TextChoices):
        ALIGN = "AL", "Align"
        IN_HOUSE = "IH", "In-house"
        OTHER = "OT", "Other lab"

    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="prescription")
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="prescriptions")
    lab = models.CharField(max_length=2, choices=Lab.choices, default=Lab.ALIGN)
    created = models.DateTimeField(default=timezone.now)

    LAB_FROZEN_MESSAGE = (
        "The lab cannot be changed: this case has been sent to Align (it is {state}). "
        "Cancel the case instead if it should leave the Align workflow."
    )

    def __str__(self):
        return f"Prescription to {self.get_lab_display()}"

    def save(self, *args, **kwargs):
        error = self.lab_change_error()
        if error:
            raise ValidationError({"lab": error})
        super().save(*args, **kwargs)

    def lab_change_error(self):
        """Why this (changed) lab may not be saved, or None.

        A case is in the Align workflow while its prescription's lab is Align. While it is
        eligible (nothing sent) the lab may change freely: changed to Align, the case
        enters the workflow at `eligible`; changed away, it leaves it. Once anything was
        sent the lab is fixed (Align holds the case).
        """
        if self.pk is None:
            return None
        stored = Prescription.objects.filter(pk=self.pk).values_list("lab", "case__state").first()
        if stored is None:
            return None
        lab, state = stored
        if lab != self.lab and state != wf.ELIGIBLE:
            return self.LAB_FROZEN_MESSAGE.format(state=wf.state_label(state))
        return None

    def clean(self):
        super().clean()
        error = self.lab_change_error()
        if error:
            raise ValidationError({"lab": error})


class PhotoAssessment(models.Model):
    class Status(models.TextChoices):
        PENDING = "PENDING", "Pending"
        APPROVED = "APPROVED", "Approved"
        REJECTED = "REJECTED", "Rejected"

    class TreatmentOption(models.TextChoices):
        BOTH_ARCHES = "BOTH_ARCHES", "Both arches"
        UPPER_ONLY = "UPPER_ONLY", "Upper only"
        LOWER_ONLY = "LOWER_ONLY", "Lower only"

    case = models.OneToOneField(Case, on_delete=models.CASCADE, related_name="photo_assessment")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    treatment_option = models.CharField(
        max_length=12, choices=TreatmentOption.choices, default=TreatmentOption.BOTH_ARCHES
    )
    created = models.DateTimeField(default=timezone.now)

    def __str__(self):
        return f"Photo assessment {self.get_status_display().lower()}"


class CaseAsset(models.Model):
    class Kind(models.TextChoices):
        STL_UPPER = "STL_UPPER", "STL scan, upper"
        STL_LOWER = "STL_LOWER", "STL scan, lower"
        PHOTO = "PHOTO", "Photo"
        CCACCEPTSCREEN = "CCACCEPTSCREEN", "ClinCheck acceptance screenshot"
        PROVPREV = "PROVPREV", "Treatment plan preview"

    STL_KINDS = (Kind.STL_UPPER, Kind.STL_LOWER)

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="assets")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    file = models.FileField(upload_to="assets/%Y/%m/", blank=True)
    filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    url = models.URLField(max_length=500, blank=True)
    size = models.PositiveBigIntegerField("size in bytes", null=True, blank=True)
    vault_id = models.CharField(max_length=64, blank=True)
    external_key = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now)
    removed = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return f"{self.get_kind_display()} {self.filename or self.pk}"


class CaseNote(AppendOnlyModel):
    """A line of the case's history: written once, never changed or deleted (records.py)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    text = models.TextField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self):
        return self.text[:80]


class AlignOrder(models.Model):
    """A sales order Align opened (event `sales_order.created`); stored once, never updated."""

    class Kind(models.TextChoices):
        PRIMARY = "PRIMARY", "Primary"
        SECONDARY = "SECONDARY", "Secondary"

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="align_orders")
    sales_order_number = models.CharField(max_length=40, unique=True)
    order_kind = models.CharField(max_length=10, choices=Kind.choices)
    order_type = models.CharField(max_length=20, blank=True)
    p_id = models.CharField(max_length=40, blank=True)
    align_created_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-align_created_at", "-id"]

    def __str__(self):
        return f"{self.get_order_kind_display()} order {self.sales_order_number}"


class TreatmentPlan(models.Model):
    """A ClinCheck plan Align submitted (event `treatment_plan.submitted`)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="treatment_plans")
    plan_id = models.CharField(max_length=40)
    version = models.PositiveIntegerField()
    revision_of = models.CharField(max_length=40, blank=True)
    sales_order_number = models.CharField(max_length=40, blank=True)
    stages_upper = models.PositiveSmallIntegerField(default=0)
    stages_lower = models.PositiveSmallIntegerField(default=0)
    attachments = models.BooleanField(default=False)
    ipr = models.BooleanField(default=False)
    notes = models.TextField(blank=True)
    preview = models.ForeignKey(CaseAsset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-version", "-id"]
        constraints = [models.UniqueConstraint(fields=["case", "version"], name="unique_plan_version_per_case")]

    def __str__(self):
        return f"Plan {self.plan_id}, version {self.version}"
