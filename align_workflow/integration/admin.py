from django.contrib import admin, messages

from .events import apply_event
from .models import AlignCaseStatus, InboundEvent


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("yes", "Needs attention (failed, or pending too long)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.needing_attention()
        return queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    list_display = (
        "event_id",
        "type",
        "summary",
        "case",
        "status",
        "needs_attention",
        "occurred_at",
        "received_at",
        "attempts",
    )
    list_filter = (NeedsAttentionFilter, "status", "type")
    search_fields = ("event_id", "case__case_number")
    list_select_related = ("case",)
    date_hierarchy = "received_at"
    fields = (
        "event_id",
        "type",
        "summary",
        "case",
        "status",
        "status_detail",
        "occurred_at",
        "received_at",
        "applied_at",
        "attempts",
        "last_attempt_at",
        "payload",
        "raw_body",
    )
    readonly_fields = fields
    actions = ["reapply"]

    @admin.display(boolean=True, description="needs attention")
    def needs_attention(self, obj):
        return obj.needs_attention

    @admin.action(description="Re-apply the selected events (through the workflow engine)")
    def reapply(self, request, queryset):
        results = {}
        for pk in queryset.values_list("pk", flat=True):
            event = apply_event(pk, again=True)
            results.setdefault(event.status, []).append(event.event_id)
        for status, ids in sorted(results.items()):
            level = messages.ERROR if status == InboundEvent.Status.FAILED else messages.INFO
            self.message_user(
                request,
                f"{len(ids)} event(s) now {status}: {', '.join(ids[:10])}{' …' if len(ids) > 10 else ''}",
                level,
            )


@admin.register(AlignCaseStatus)
class AlignCaseStatusAdmin(ReadOnlyAdmin):
    list_display = ("case", "status", "previous_status", "furthest_status", "occurred_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("case__case_number",)
    list_select_related = ("case",)
