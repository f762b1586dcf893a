"""What waits for the person signed in, for the portals' top bar: a provider's plans to
review, or (staff) the cases that need attention. Read from the cases themselves, so the
list is right whether or not an email was sent, and empties as the work is done."""

from django.db.models import Q
from django.urls import reverse

from align_workflow.cases.models import Case, Prescription, Provider
from states import align_case as wf

SHOWN = 5  # the list shows this many; the count says how many there are


def waiting_for(user) -> dict | None:
    if not user.is_authenticated:
        return None
    if user.is_staff:
        cases = Case.objects.filter(needs_attention=True, prescription__lab=Prescription.Lab.ALIGN).exclude(
            state__in=wf.TERMINAL
        )
        cases = cases.order_by("-state_changed_at", "-id")
        count = cases.count()
        label = "1 case needs attention" if count == 1 else f"{count} cases need attention"
        link = "portals:staff_case"
    else:
        cases = Case.objects.filter(Q(prescription__provider__user_id=user.pk), state=wf.PLAN_RECEIVED).order_by(
            "state_changed_at", "id"
        )
        count = cases.count()
        if not count and not Provider.objects.filter(user_id=user.pk).exists():
            return None  # neither staff nor a provider
        label = "1 plan waits for you" if count == 1 else f"{count} plans wait for you"
        link = "portals:provider_case"
    items = [
        {"case_number": number, "url": reverse(link, args=[pk])}
        for pk, number in cases.values_list("pk", "case_number")[:SHOWN]
    ]
    return {"count": count, "label": label, "items": items, "more": count - len(items), "staff": user.is_staff}
