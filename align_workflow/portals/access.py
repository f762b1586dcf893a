"""Who may open which portal: staff pages need is_staff; provider pages need a
Provider, and a provider only ever sees their own cases (anything else is a 404).
Someone signed out is sent to sign in; an action they clicked is not done (intent.py)."""

from functools import wraps

from django.core.exceptions import PermissionDenied

from align_workflow.cases.models import Provider

from .intent import sign_in_again


def is_provider(user) -> bool:
    return user.is_authenticated and Provider.objects.filter(user_id=user.pk).exists()


def _require(test):
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return sign_in_again(request)
            if not test(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


staff_required = _require(lambda user: user.is_active and user.is_staff)
provider_required = _require(lambda user: user.is_active and is_provider(user))
