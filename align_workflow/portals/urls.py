from django.urls import path

from .views import exports, home, notifications, provider, staff, support

app_name = "portals"

urlpatterns = [
    path("", home.home, name="home"),
    path("staff/", staff.case_list, name="staff_cases"),
    path("staff/export.csv", exports.case_list_csv, name="staff_export"),
    path("staff/cases/<int:pk>/", staff.case_detail, name="staff_case"),
    path("staff/cases/<int:pk>/history.csv", exports.case_history_csv, name="staff_case_history"),
    path("staff/cases/<int:pk>/status/", staff.case_status, name="staff_case_status"),
    path(
        "staff/cases/<int:pk>/acceptance-screenshot/<int:asset_id>/",
        staff.acceptance_screenshot,
        name="staff_acceptance_screenshot",
    ),
    path("staff/cases/<int:pk>/send/", staff.send, name="staff_send"),
    path("staff/cases/<int:pk>/retry/", staff.retry, name="staff_retry"),
    path("staff/cases/<int:pk>/aligners-purchased/", staff.aligners_purchased, name="staff_aligners_purchased"),
    path("staff/cases/<int:pk>/cancel/", staff.cancel, name="staff_cancel"),
    path("staff/cases/<int:pk>/gender/", staff.set_gender, name="staff_gender"),
    path("staff/cases/<int:pk>/contact/", staff.set_contact, name="staff_contact"),
    path("provider/", provider.case_list, name="provider_cases"),
    path("provider/cases/<int:pk>/", provider.case_detail, name="provider_case"),
    path("provider/cases/<int:pk>/status/", provider.case_status, name="provider_case_status"),
    path(
        "provider/cases/<int:pk>/acceptance-screenshot/<int:asset_id>/",
        provider.acceptance_screenshot,
        name="provider_acceptance_screenshot",
    ),
    path("provider/cases/<int:pk>/approve/", provider.approve, name="provider_approve"),
    path("provider/cases/<int:pk>/request-revision/", provider.request_revision, name="provider_request_revision"),
    path("provider/notifications/", notifications.settings_page, name="provider_notifications"),
    path("support/workflow/", support.workflow, name="support_workflow"),
    path("support/metrics.json", support.metrics_json, name="support_metrics"),
]
