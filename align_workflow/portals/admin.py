"""The admin of the cases (support's view of each case's history, notes, files, calls to
Align and events from Align) and of the users: it lives with the portals, above the
workflow, so the cases app stays models only."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django_fsm_log.admin import StateLogInline
from django_fsm_log.models import StateLog

from align_workflow.cases.models import (
    AlignOrder,
    Case,
    CaseAsset,
    CaseNote,
    Patient,
    PhotoAssessment,
    Prescription,
    Provider,
    TreatmentPlan,
)
from align_workflow.cases.readonly import ReadOnlyAdmin
from align_workflow.integration.models import InboundEvent
from align_workflow.workflow.engine import TransitionNotAllowed, fire
from align_workflow.workflow.models import OutboundAttempt

# The site says whose it is, and its "View site" link leads back to the staff portal.
admin.site.site_header = "Align workflow administration"
admin.site.site_title = "Align workflow admin"
admin.site.index_title = "Support: cases, their history, calls to Align and events from Align"
admin.site.site_url = "/staff/"


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
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


class AssetInline(ReadOnlyInline):
    # What was sent to Align and the screenshots the providers approved: never edited here.
    model = CaseAsset
    fields = ("kind", "filename", "file", "sha256", "vault_id", "external_key", "created", "removed")
    readonly_fields = fields


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


class CancelReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        strip=True,
        widget=forms.TextInput(attrs={"size": 60}),
        error_messages={"required": "A reason is required to cancel a case."},
    )


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("case_number", "patient", "state", "needs_attention", "state_changed_at")
    list_filter = ("state", "needs_attention")
    search_fields = ("case_number", "patient__mrn")
    readonly_fields = (
        "state",
        "state_changed_at",
        "align_pid",
        "needs_attention",
        "attention_reason",
        "busy_with",
        "busy_until",
        "aligners_purchased_at",
        "cancel_reason",
        "carrier",
        "tracking_number",
        "shipped_at",
    )
    inlines = [
        StateLogInline,
        NoteInline,
        AssetInline,
        AlignOrderInline,
        TreatmentPlanInline,
        AttemptInline,
        EventInline,
    ]
    actions = ["cancel_cases"]

    def has_delete_permission(self, request, obj=None):
        # A case with history is cancelled, never deleted (its history would be lost).
        if obj is not None and obj.has_history:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one by one, from a case's page, only without history
        return actions

    @admin.action(description="Cancel the selected cases (through the workflow engine; asks for a reason)")
    def cancel_cases(self, request, queryset):
        form = CancelReasonForm(request.POST if "apply" in request.POST else None)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/cases/case/cancel_reason.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Cancel cases",
                    "opts": self.model._meta,
                    "cases": queryset,
                    "form": form,
                    "action_checkbox_name": ACTION_CHECKBOX_NAME,
                },
            )
        reason = form.cleaned_data["reason"]
        done = 0
        for case in queryset:
            try:
                fire(case, "cancel", by=request.user, reason=reason)
                done += 1
            except TransitionNotAllowed as exc:
                self.message_user(request, f"{case}: {exc}", messages.WARNING)
        if done:
            self.message_user(request, f"Cancelled {done} case(s).", messages.SUCCESS)
        return None


class AuditTrailAdmin(ReadOnlyAdmin):
    """The audit trail: viewed, never added, changed or deleted (cases/records.py)."""


@admin.register(StateLog)
class StateLogAdmin(AuditTrailAdmin):
    """Every state change of every case: filter by transition, state or date; search by
    case number, transition or who made it."""

    list_display = ("timestamp", "case_link", "transition", "source_state", "state", "by", "description")
    list_filter = ("transition", "state", "source_state", "timestamp")
    search_fields = ("transition", "by__username", "description")
    date_hierarchy = "timestamp"
    list_select_related = ("by",)
    ordering = ("-timestamp", "-id")

    def get_search_results(self, request, queryset, search_term):
        found, duplicates = super().get_search_results(request, queryset, search_term)
        if search_term:
            cases = Case.objects.filter(case_number__icontains=search_term.strip()).values_list("pk", flat=True)[:500]
            found = found | queryset.filter(object_id__in=list(cases))
        return found, duplicates

    @admin.display(description="case")
    def case_link(self, obj):
        case = self._cases.get(obj.object_id) if hasattr(self, "_cases") else None
        if case is None:
            case = Case.objects.filter(pk=obj.object_id).values_list("case_number", flat=True).first()
        if case is None:
            return f"#{obj.object_id}"
        return format_html('<a href="{}">{}</a>', reverse("admin:cases_case_change", args=[obj.object_id]), case)

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        ids = {log.object_id for log in changelist.result_list}
        self._cases = dict(Case.objects.filter(pk__in=ids).values_list("pk", "case_number"))
        return changelist


@admin.register(CaseNote)
class CaseNoteAdmin(AuditTrailAdmin):
    list_display = ("created", "case", "author", "text")
    search_fields = ("case__case_number", "text")
    list_select_related = ("case", "author")
    date_hierarchy = "created"


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("mrn", "last_name", "first_name", "gender")
    search_fields = ("mrn", "last_name")


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ("account_name", "user")
    search_fields = ("account_name", "user__username")
    list_select_related = ("user",)


@admin.register(Prescription)
class PrescriptionAdmin(admin.ModelAdmin):
    list_display = ("case", "lab", "provider", "created")
    list_filter = ("lab",)
    search_fields = ("case__case_number",)
    list_select_related = ("case", "provider")


@admin.register(PhotoAssessment)
class PhotoAssessmentAdmin(admin.ModelAdmin):
    list_display = ("case", "status", "treatment_option", "created")
    list_filter = ("status", "treatment_option")
    search_fields = ("case__case_number",)
    list_select_related = ("case",)


class UserAdmin(DjangoUserAdmin):
    """A user named in the state history is deactivated, not deleted: deleting would
    rewrite the history's "by" (and the database refuses it on PostgreSQL)."""

    def has_delete_permission(self, request, obj=None):
        if obj is not None and StateLog.objects.filter(by=obj).exists():
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


User = get_user_model()
admin.site.unregister(User)
admin.site.register(User, UserAdmin)
