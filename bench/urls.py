"""The app's URLs plus figure 7's bare endpoint (served only by bench.ingest_settings)."""

from django.urls import path

from align_workflow.urls import urlpatterns as app_urlpatterns

from .views import bare_event

urlpatterns = [path("bench/events", bare_event), *app_urlpatterns]
