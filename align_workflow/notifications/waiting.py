"""What waits for the person signed in, for the portals' top bar: on a provider's pages,
their plans to review; for staff, the cases that need attention. Read from the cases
themselves, so the list is right whether or not an email was sent, and empties as the
work is done. One query: the first few cases, each carrying the total (a window count)."""

from django.db.models import Count, Window
from django.urls import reverse

from align_workflow.cases.models import Case, Prescription
from states import align_case as wf

SHOWN = 5  # the list shows this many; the count says how many there are


def _first(cases, link):
    rows = list(cases.annotate(total=Window(Count("id"))).values_list("pk", "case_number", "total")[:SHOWN])
    items = [{"case_number": number, "url": reverse(link, args=[pk])} for pk, number, _total in rows]
    count = rows[0][2] if rows else 0
    return count, items


def waiting_for(user, *, provider_page=False) -> dict | None:
    """Staff: cases needing attention. On a provider's pages (the view checked that the
    user is a provider): their plans waiting for review. Anybody else: None."""
    if not user.is_authenticated:
        return None
    if user.is_staff:
        cases = Case.objects.filter(needs_attention=True, prescription__lab=Prescription.Lab.ALIGN).exclude(
            state__in=wf.TERMINAL
        )
        count, items = _first(cases.order_by("-state_changed_at", "-id"), "portals:staff_case")
        label = "1 case needs attention" if count == 1 else f"{count} cases need attention"
    elif provider_page:
        cases = Case.objects.filter(prescription__provider__user_id=user.pk, state=wf.PLAN_RECEIVED)
        count, items = _first(cases.order_by("state_changed_at", "id"), "portals:provider_case")
        label = "1 plan waits for you" if count == 1 else f"{count} plans wait for you"
    else:
        return None
    return {"count": count, "label": label, "items": items, "more": count - len(items), "staff": user.is_staff}
