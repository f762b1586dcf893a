"""The case page's timeline and Align panel, shared by the staff and the provider pages,
and the ClinCheck acceptance screenshot as an image (staff, and the case's own provider).
The screenshot's address holds the case's and the file's ids only; the image is read from
the vault and answered so that a browser shows it and does nothing else with it."""

from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from align_workflow.align.vault import VaultError, get_vault
from align_workflow.cases.models import CaseAsset
from states import align_case as wf

from .. import timeline


def timeline_context(case, screenshot_url):
    """What the timeline include and the Align panel show (staff and provider pages)."""
    entries = timeline.case_timeline(case)
    for entry in entries:
        if entry.screenshot:
            entry.screenshot_url = reverse(screenshot_url, args=[case.pk, entry.screenshot.pk])
    shot = timeline.newest_screenshot(case)
    status = timeline.align_status(case)
    return {
        "timeline": entries,
        "planned_retry": timeline.planned_retry(case),
        "align_status": status,
        "align_status_label": wf.align_status_label(status.status) if status else "",
        "tracking_url": timeline.tracking_url(case.carrier, case.tracking_number),
        "screenshot_url": reverse(screenshot_url, args=[case.pk, shot.pk]) if shot else "",
    }


SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def screenshot_response(request, case, asset_id, *, nav):
    """The image, or a page saying why it cannot be shown (404: no such screenshot of
    this case or not in the vault; 502: the vault did not answer)."""
    try:
        shot = timeline.screenshot_of(case, asset_id)
    except CaseAsset.DoesNotExist:
        return _unavailable(request, case, nav, "This case has no such acceptance screenshot.", 404)
    try:
        image = get_vault().get(shot.vault_id, shot.external_key)
    except VaultError as exc:
        if exc.status == 404:
            return _unavailable(request, case, nav, "The acceptance screenshot is not in the vault.", 404)
        return _unavailable(
            request, case, nav, "The vault did not return the acceptance screenshot; try again in a moment.", 502
        )
    response = render_image(image)
    response["Content-Disposition"] = f'inline; filename="clincheck-acceptance-{case.case_number}.jpg"'
    return response


def render_image(image: bytes):
    response = HttpResponse(image, content_type="image/jpeg")
    for name, value in SAFE_HEADERS.items():
        response[name] = value
    return response


def _unavailable(request, case, nav, message, status):
    return render(
        request,
        "portals/screenshot_unavailable.html",
        {
            "nav": nav,
            "case": case,
            "message": message,
            "back": request.path.rsplit("/acceptance-screenshot/", 1)[0] + "/",
        },
        status=status,
    )
