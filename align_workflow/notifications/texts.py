"""What each email says: the case number, what happened and a link, never patient data
(no name, date of birth or MRN: a test seeds distinctive ones and looks for them)."""

from django.conf import settings
from django.urls import reverse

from states import align_case as wf


def link(path: str) -> str:
    return settings.ALIGN_PUBLIC_URL.rstrip("/") + path


def provider_case_url(case) -> str:
    return link(reverse("portals:provider_case", args=[case.pk]))


def staff_case_url(case) -> str:
    return link(reverse("portals:staff_case", args=[case.pk]))


def preferences_url() -> str:
    return link(reverse("portals:provider_notifications"))


def _provider_footer() -> str:
    return (
        "\n\nYou receive this because you are the provider on this case. "
        f"To receive these as a daily digest, or not at all: {preferences_url()}\n"
    )


def plan(case, version: int) -> tuple[str, str]:
    revised = version > 1
    what = f"a revised treatment plan (version {version})" if revised else "a treatment plan"
    subject = f"Case {case.case_number}: {what} waits for your review"
    body = (
        f"Align sent {what} for case {case.case_number}. It waits for your review: "
        f"approve it or ask for changes.\n\nOpen the case: {provider_case_url(case)}" + _provider_footer()
    )
    return subject, body


def shipped(case) -> tuple[str, str]:
    subject = f"Case {case.case_number}: aligners shipped"
    body = (
        f"Align shipped the aligners for case {case.case_number} "
        f"(the case is now {wf.state_label(wf.SHIPPING)}).\n\nOpen the case: {provider_case_url(case)}"
        + _provider_footer()
    )
    return subject, body


def attention(case, step: str) -> tuple[str, str]:
    subject = f"Case {case.case_number} needs attention"
    body = (
        f'The call to Align "{wf.trigger_label(step)}" for case {case.case_number} failed and is not retried '
        "automatically: a person has to look at it (the case page says why and has a retry button).\n\n"
        f"Open the case: {staff_case_url(case)}\n"
    )
    return subject, body


def _duration(seconds: int) -> str:
    """6 hours, 1 hour, 90 minutes, 45 seconds."""
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            amount = seconds // size
            return f"{amount} {unit}" + ("" if amount == 1 else "s")
    return f"{seconds} seconds"


def events_pending(case, count: int, seconds: int) -> tuple[str, str]:
    events = "1 event" if count == 1 else f"{count} events"
    waited = _duration(seconds)
    if case is None:
        subject = f"{events} from Align for no known case waiting"
        where = link(reverse("admin:integration_inboundevent_changelist")) + "?status__exact=pending"
        body = f"{events} from Align, for no case we know, waited more than {waited}.\n\nSee them: {where}\n"
        return subject, body
    subject = f"Case {case.case_number}: {events} from Align waiting"
    body = (
        f"{events} from Align for case {case.case_number} waited more than {waited} "
        f"without being applied (the case is {wf.state_label(case.state)}).\n\n"
        f"Open the case: {staff_case_url(case)}\n"
    )
    return subject, body


def digest(items) -> tuple[str, str]:
    """One email for a provider's day: each item's subject and link."""
    count = len(items)
    subject = "Your daily summary: 1 update" if count == 1 else f"Your daily summary: {count} updates"
    lines = [f"- {item.subject}\n  {item.link}" for item in items]
    body = "What happened on your cases since the last summary:\n\n" + "\n".join(lines) + _provider_footer()
    return subject, body
