from django.contrib import admin

from align_workflow.cases.readonly import ReadOnlyAdmin

from .models import OutboundAttempt


@admin.register(OutboundAttempt)
class OutboundAttemptAdmin(ReadOnlyAdmin):
    """Every call to Align, for support: read-only (the workflow writes these)."""

    list_display = (
        "created",
        "case",
        "step",
        "attempt",
        "status",
        "http_status",
        "error_code",
        "duration_ms",
        "next_retry_at",
    )
    list_display_links = ("created",)
    list_filter = ("status", "step")
    search_fields = ("case__case_number", "idempotency_key", "request_id")
    list_select_related = ("case",)
    date_hierarchy = "created"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
