"""The words of case notes about calls to Align, and the scrubbing of patient details
from what Align sends back."""

from __future__ import annotations

from .labels import ALIGN_TRIGGER_LABELS, trigger_label


def scrub(text: str, patient) -> str:
    """Remove the patient's details from a message the service sent back (it may echo them)."""
    text = str(text or "")
    if patient is None:
        return text
    values = [
        patient.first_name,
        patient.last_name,
        patient.full_name,
        patient.email,
        patient.phone,
        patient.address_line1,
        patient.address_line2,
        patient.city,
        patient.zip_code,
        patient.date_of_birth.isoformat() if patient.date_of_birth else "",
    ]
    for value in sorted({v.strip() for v in values if v and len(v.strip()) >= 3}, key=len, reverse=True):
        lowered = text.lower()
        start = lowered.find(value.lower())
        while start != -1:
            text = text[:start] + "[redacted]" + text[start + len(value) :]
            lowered = text.lower()
            start = lowered.find(value.lower(), start + len("[redacted]"))
    return text[:1000]


def outcome_sentence(label, status, code, message):
    if status is not None:
        text = f"Bad Align response during {label}. Status code: {status}"
    elif code in ("TIMEOUT", "CONNECTION", "REQUEST_FAILED"):
        text = f"No answer from Align during {label}"
    else:
        text = f"{label} failed before Align answered"
    detail = ": ".join(p for p in (code, message) if p)
    return f"{text} ({detail})." if detail else f"{text}."


def attention_prefix(step):
    return f"{trigger_label(step)}: "


def is_outbound_attention(reason: str) -> bool:
    """Whether a case's needs-attention reason was raised by a call to Align."""
    return reason.startswith(OUTBOUND_ATTENTION_PREFIXES)


# How a needs-attention reason raised by a call to Align begins (one per step).
OUTBOUND_ATTENTION_PREFIXES = tuple(attention_prefix(step) for step in ALIGN_TRIGGER_LABELS)
