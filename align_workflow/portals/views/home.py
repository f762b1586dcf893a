from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect

from ..access import is_provider
from ..intent import tell_after_sign_in


def home(request):
    """Send each person to their portal: staff to /staff/, a provider to /provider/."""
    user = request.user
    if not user.is_authenticated:
        return redirect("login")
    if user.is_staff:
        return redirect("portals:staff_cases")
    if is_provider(user):
        return redirect("portals:provider_cases")
    messages.warning(request, "This account has no portal: sign in as clinic staff or as a provider.")
    return redirect("login")


class LoginView(auth_views.LoginView):
    template_name = "portals/login.html"
    redirect_authenticated_user = False

    def form_valid(self, form):
        response = super().form_valid(form)
        tell_after_sign_in(self.request, response.url)
        return response
