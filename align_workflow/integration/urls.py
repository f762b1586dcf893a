from django.urls import path

from . import views

app_name = "align"

urlpatterns = [
    path("events", views.receive_event, name="events"),
    path("cases/<int:case_id>/assets", views.case_assets, name="case-assets"),
]
