"""Email in the tests: a mail server that is down, and the check that no message carries
the seeded patient's details."""

import smtplib
from datetime import date

from django.core.mail.backends.base import BaseEmailBackend

STAFF_ADDRESSES = ["desk@clinic.example", "lead@clinic.example"]
# Distinctive patient details: none of them may appear in any email.
PHI = {"first_name": "Xanthippe", "last_name": "Quarrington", "mrn": "MRN-PHI-739215", "dob": date(1987, 11, 23)}


class DownBackend(BaseEmailBackend):
    """Every send fails the way an SMTP server that refuses connections does."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPConnectError(421, "Service not available")


def phi_strings():
    dob = PHI["dob"]
    return [
        PHI["first_name"],
        PHI["last_name"],
        PHI["mrn"],
        dob.isoformat(),
        dob.strftime("%m/%d/%Y"),
        dob.strftime("%d/%m/%Y"),
        dob.strftime("%d.%m.%Y"),
        dob.strftime("%B %d, %Y"),
        dob.strftime("%b. %d, %Y"),
    ]


def assert_no_phi(messages):
    assert messages, "no message to check"
    for message in messages:
        text = "\n".join([message.subject, message.body, *message.to])
        text += "".join(content for content, _type in getattr(message, "alternatives", []))
        for value in phi_strings():
            assert value.lower() not in text.lower(), f"{value!r} in {message.subject!r}"
