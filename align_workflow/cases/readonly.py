"""The admin's face of the audit trail (records.py): a model admin that lets a person look,
never add, change or delete. Every app's admin of recorded rows builds on it."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
