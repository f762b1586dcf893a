from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from align_workflow.portals.views.home import LoginView
from align_workflow.workflow.shop_api import aligners_purchased

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("api/align/", include("align_workflow.integration.urls")),
    path("api/cases/<int:case_id>/aligners-purchased", aligners_purchased, name="shop-aligners-purchased"),
    path("", include("align_workflow.portals.urls")),
]

# The portals' error pages with DEBUG off (with DEBUG on: align_workflow/portals/middleware.py).
handler403 = "align_workflow.portals.views.errors.permission_denied"
handler404 = "align_workflow.portals.views.errors.page_not_found"
handler500 = "align_workflow.portals.views.errors.server_error"
