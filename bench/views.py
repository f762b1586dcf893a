"""Figure 7's baseline: an endpoint that verifies an event's signature and stores its body."""

from django.db import transaction
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from align_workflow.align.signatures import SignatureError, verify_signature

from .models import BareEvent


@csrf_exempt
@transaction.non_atomic_requests
def bare_event(request):
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    try:
        event_id = verify_signature(request.body, request.headers)
    except SignatureError as exc:
        return JsonResponse({"error": str(exc)}, status=401)
    BareEvent.objects.bulk_create([BareEvent(event_id=event_id, body=request.body.decode())], ignore_conflicts=True)
    return JsonResponse({"event_id": event_id})
