"""A provider's choices: for each kind they receive, each email, a daily digest, or none."""

from django import forms
from django.db import transaction

from .models import PROVIDER_KINDS, Delivery, Preference


def current(provider) -> dict:
    chosen = dict(Preference.objects.filter(provider=provider).values_list("kind", "delivery"))
    return {kind.value: chosen.get(kind.value, Delivery.NOW.value) for kind in PROVIDER_KINDS}


class PreferencesForm(forms.Form):
    """One choice per kind (named by the kind: "plan", "shipped")."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for kind in PROVIDER_KINDS:
            self.fields[kind.value] = forms.ChoiceField(
                label=kind.label, choices=Delivery.choices, widget=forms.RadioSelect
            )


def save(provider, choices: dict) -> None:
    with transaction.atomic():
        for kind in PROVIDER_KINDS:
            Preference.objects.update_or_create(
                provider=provider, kind=kind.value, defaults={"delivery": choices[kind.value]}
            )
