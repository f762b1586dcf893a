"""Read-only views of the notifications (what was sent, what failed and why) and the digests."""

from django.contrib import admin

from align_workflow.cases.readonly import ReadOnlyAdmin

from .models import Digest, Notification


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("key", "kind", "case_number", "status", "attempts", "created", "sent_at")
    list_filter = ("status", "kind")
    search_fields = ("key", "case__case_number")
    list_select_related = ("case",)
    fields = (
        "key",
        "kind",
        "case",
        "provider",
        "recipients",
        "subject",
        "body",
        "link",
        "status",
        "attempts",
        "error",
        "next_attempt_at",
        "created",
        "sent_at",
        "digest",
    )

    @admin.display(description="case", ordering="case__case_number")
    def case_number(self, obj):
        return obj.case.case_number if obj.case else "-"


@admin.register(Digest)
class DigestAdmin(ReadOnlyAdmin):
    list_display = ("provider", "day", "status", "sent_at")
    list_filter = ("status", "day")
    fields = ("provider", "day", "status", "error", "sent_at")
