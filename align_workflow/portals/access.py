"""Who may open which portal: staff pages need is_staff; provider pages need a
Provider, and a provider only ever sees their own cases (anything else is a 404)."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

from align_workflow.cases.models import Provider


def is_provider(user) -> bool:
    return user.is_authenticated and Provider.objects.filter(user_id=user.pk).exists()


def _require(test):
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not test(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


staff_required = _require(lambda user: user.is_active and user.is_staff)
provider_required = _require(lambda user: user.is_active and is_provider(user))
