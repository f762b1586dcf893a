from django.contrib import admin, messages
from django.template.defaultfilters import truncatechars
from django.utils.html import format_html

from align_workflow.cases.readonly import ReadOnlyAdmin

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


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    # What support looks for first (when, did it apply, which case), all visible at 1366 px.
    list_display = (
        "received_at",
        "status_badge",
        "case",
        "type",
        "short_summary",
        "needs_attention",
        "occurred_at",
        "attempts",
        "short_event_id",
    )
    list_display_links = ("received_at",)
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

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        return format_html(
            '<span class="event-status event-status-{}" title="{}">{}</span>',
            obj.status,
            obj.get_status_display(),
            obj.status,
        )

    @admin.display(description="summary")
    def short_summary(self, obj):
        return format_html('<span title="{}">{}</span>', obj.summary, truncatechars(obj.summary, 48))

    @admin.display(description="event id", ordering="event_id")
    def short_event_id(self, obj):
        return format_html('<span title="{}">{}</span>', obj.event_id, truncatechars(obj.event_id, 14))

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
