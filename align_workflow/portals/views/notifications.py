"""The provider's email settings: each kind by email, as a daily digest, or not at all."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from align_workflow.cases.models import Provider
from align_workflow.notifications import preferences

from ..access import provider_required


@require_http_methods(["GET", "POST"])
@provider_required
def settings_page(request):
    provider = Provider.objects.select_related("user").get(user_id=request.user.pk)
    if request.method == "POST":
        form = preferences.PreferencesForm(request.POST)
        if form.is_valid():
            preferences.save(provider, form.cleaned_data)
            messages.success(request, "Your email settings are saved.")
            return redirect("portals:provider_notifications")
    else:
        form = preferences.PreferencesForm(initial=preferences.current(provider))
    return render(
        request,
        "portals/provider/notifications.html",
        {"nav": "provider", "form": form, "email": provider.user.email},
        status=400 if form.is_bound else 200,
    )
