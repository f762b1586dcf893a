"""A click that could not be done keeps its intent: the case page it came from.

An action (a POST to `/staff/cases/7/cancel/`) whose session has expired is not done; the
person is sent to sign in with the case page as `next` (never the action's address, which
would end on a 405 after signing in), and once signed in lands on the case with a message
that the action was not done and should be done again. The typed text (a cancel reason,
revision comments) is kept by the browser (static/portals/keep-typed.js), never in an
address: nothing about the patient is carried through the sign-in."""

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

# An action's URL name starts with its portal's prefix; its case page has this name.
CASE_PAGES = {"staff_": "portals:staff_case", "provider_": "portals:provider_case"}
# The session key: the case page whose action was interrupted (an address, no patient detail).
INTERRUPTED_KEY = "interrupted_action_on"

SIGN_IN_FIRST = "You were signed out (the session expired), so your last action was not done. Sign in to go back."
NOT_DONE = (
    "Your last action was not done: you had been signed out. Check the case below and do it again if it is "
    "still needed; text you had typed is filled in again where the browser kept it."
)


def case_page_for(request):
    """The case page an action URL belongs to (`/staff/cases/7/cancel/` → `/staff/cases/7/`),
    or None when the address is not a case's."""
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    if match.namespace != "portals" or "pk" not in match.kwargs:
        return None
    for prefix, name in CASE_PAGES.items():
        if match.url_name.startswith(prefix):
            try:
                return reverse(name, kwargs={"pk": match.kwargs["pk"]})
            except NoReverseMatch:
                return None
    return None


def sign_in_again(request):
    """The answer to a request from someone signed out: a page (GET) is opened again after
    signing in; an action (POST) is not repeated: back to its case page, told why."""
    if request.method != "POST":
        return redirect_to_login(request.get_full_path())
    back_to = case_page_for(request) or request.path
    request.session[INTERRUPTED_KEY] = back_to
    messages.warning(request, SIGN_IN_FIRST)
    return redirect_to_login(back_to)


def tell_after_sign_in(request, redirect_to):
    """Called once the person signed in: the message on the case page they go back to."""
    interrupted = request.session.pop(INTERRUPTED_KEY, None)
    if interrupted and interrupted == redirect_to:
        messages.warning(request, NOT_DONE)
