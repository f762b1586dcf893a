from django.contrib import admin, messages
from django_fsm_log.admin import StateLogInline

from align_workflow.integration.models import InboundEvent
from align_workflow.workflow.engine import TransitionNotAllowed, fire
from align_workflow.workflow.models import OutboundAttempt

from .models import AlignOrder, Case, CaseAsset, CaseNote, Patient, PhotoAssessment, Prescription, Provider, TreatmentPlan


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class NoteInline(ReadOnlyInline):
    model = CaseNote
    fields = ("created", "author", "text")
    readonly_fields = fields


class AlignOrderInline(ReadOnlyInline):
    model = AlignOrder
    fields = ("sales_order_number", "order_kind", "order_type", "p_id", "align_created_at", "received_at")
    readonly_fields = fields


class TreatmentPlanInline(ReadOnlyInline):
    model = TreatmentPlan
    fields = ("plan_id", "version", "revision_of", "stages_upper", "stages_lower", "notes", "received_at")
    readonly_fields = fields


class AssetInline(admin.TabularInline):
    model = CaseAsset
    extra = 0
    fields = ("kind", "filename", "file", "vault_id", "external_key", "created", "removed")
    readonly_fields = ("vault_id", "external_key", "created")


class AttemptInline(ReadOnlyInline):
    model = OutboundAttempt
    fields = ("created", "step", "attempt", "status", "http_status", "error_code", "message", "next_retry_at")
    readonly_fields = fields
    ordering = ("-created", "-id")


class EventInline(ReadOnlyInline):
    model = InboundEvent
    fields = ("received_at", "type", "summary", "status", "status_detail")
    readonly_fields = fields
    ordering = ("-received_at", "-id")


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("case_number", "patient", "state", "needs_attention", "state_changed_at")
    list_filter = ("state", "needs_attention")
    search_fields = ("case_number", "patient__mrn")
    readonly_fields = (
        "state", "state_changed_at", "align_pid", "needs_attention", "attention_reason",
        "busy_with", "busy_until", "cancel_reason", "carrier", "tracking_number", "shipped_at",
    )
    inlines = [StateLogInline, NoteInline, AssetInline, AlignOrderInline, TreatmentPlanInline, AttemptInline,
               EventInline]
    actions = ["cancel_cases"]

    @admin.action(description="Cancel the selected cases (through the workflow engine)")
    def cancel_cases(self, request, queryset):
        done = 0
        for case in queryset:
            try:
                fire(case, "cancel", by=request.user, reason=f"Cancelled from the admin by {request.user}")
                done += 1
            except TransitionNotAllowed as exc:
                self.message_user(request, f"{case}: {exc}", messages.WARNING)
        if done:
            self.message_user(request, f"Cancelled {done} case(s).", messages.SUCCESS)


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("mrn", "last_name", "first_name", "gender")
    search_fields = ("mrn", "last_name")


admin.site.register(Provider)
admin.site.register(Prescription)
admin.site.register(PhotoAssessment)
admin.site.register(CaseNote)
