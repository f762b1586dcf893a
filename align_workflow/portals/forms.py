import re

from django import forms

from align_workflow.align.payloads import PHONE_CHARS
from align_workflow.cases.models import Patient
from align_workflow.workflow.screenshots import ScreenshotError, check_data_url
from states import align_case as wf

STATE_CHOICES = [("", "All states"), *wf.STATE_LABELS.items()]
# The orders of a work queue (portals.selectors.SORTS); "" is the list's own order.
SORT_CHOICES = [
    ("", "Needs attention first, then the latest change"),
    ("waiting", "Oldest waiting first"),
    ("-waiting", "Newest first"),
    ("state", "State, in workflow order"),
    ("-state", "State, in reverse workflow order"),
    ("case", "Case number, A to Z"),
    ("-case", "Case number, Z to A"),
]
PROVIDER_SORT_CHOICES = [("", "Latest change first"), *SORT_CHOICES[1:]]
# Address parameters that are not filters: the page, and a saved search's id.
NOT_FILTERS = ("page", "s")


class CaseFilterForm(forms.Form):
    """The filters that may be in the case list's address (no patient details). A
    parameter the list does not know is refused, not silently dropped."""

    state = forms.ChoiceField(required=False, choices=STATE_CHOICES)
    attention = forms.BooleanField(required=False, label="Needs attention")
    stuck = forms.BooleanField(required=False, label="Stuck")
    other_labs = forms.BooleanField(required=False, label="Not prescribed to Align")
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES, label="Order")

    def __init__(self, data=None, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.search_in_address = data is not None and "q" in data

    def clean(self):
        cleaned = super().clean()
        if self.search_in_address:
            raise forms.ValidationError(
                "Search terms are not accepted in the address (they would be kept in logs and browser "
                "history): type them in the search box."
            )
        unknown = sorted(set(self.data or ()) - set(self.fields) - {"q", "csrfmiddlewaretoken", *NOT_FILTERS})
        if unknown:
            names = ", ".join(f"“{name[:40]}”" for name in unknown[:5])
            known = ", ".join(name for name in self.fields if name != "q")
            raise forms.ValidationError(
                f"The list has no filter named {names}; the address may hold {known} and page: "
                "choose the filters in the form below."
            )
        return cleaned


class CaseSearchForm(CaseFilterForm):
    """The search box: posted, never put in an address (names and MRNs are patient details)."""

    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search",
        widget=forms.TextInput(
            attrs={"placeholder": "Case number, MRN or patient name", "type": "search", "autofocus": True}
        ),
    )
    field_order = ["q", "state", "attention", "stuck", "other_labs", "sort"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.search_in_address = False


class ProviderFilterForm(CaseFilterForm):
    """The provider's list: a state and an order may be in the address."""

    attention = stuck = other_labs = None
    sort = forms.ChoiceField(required=False, choices=PROVIDER_SORT_CHOICES, label="Order")


class ProviderSearchForm(ProviderFilterForm):
    """The provider's search box: posted, like the staff search, never put in an address."""

    q = forms.CharField(
        required=False,
        max_length=100,
        label="Search your cases",
        widget=forms.TextInput(attrs={"placeholder": "Case number, MRN or patient name", "type": "search"}),
    )
    field_order = ["q", "state", "sort"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.search_in_address = False


class GenderForm(forms.Form):
    gender = forms.ChoiceField(choices=Patient.Gender.choices)


class ContactForm(forms.ModelForm):
    """The patient's contact details Align requires (phone, email, address), checked as
    the pre-flight checks them (workflow.preflight)."""

    class Meta:
        model = Patient
        fields = ["phone", "email", "address_line1", "address_line2", "city", "state", "zip_code", "country"]
        labels = {"address_line1": "Street", "address_line2": "Street (line 2)", "zip_code": "ZIP code"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.required = name != "address_line2"

    def clean_phone(self):
        value = self.cleaned_data["phone"].strip()
        digits = sum(c.isdigit() for c in value)
        if not PHONE_CHARS.match(value) or not 7 <= digits <= 15:
            raise forms.ValidationError("Enter a phone number: 7 to 15 digits, with + ( ) - . / or spaces.")
        return value

    def clean_country(self):
        value = self.cleaned_data["country"].strip().upper()
        if not re.fullmatch(r"[A-Z]{2}", value):
            raise forms.ValidationError("Enter the country as a two-letter code, such as US.")
        return value

    def labels_of(self, names):
        return [str(self.fields[name].label or name).lower() for name in names]


class CancelForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "Why is the case leaving the Align workflow?"}),
        error_messages={"required": "A reason is required to cancel a case."},
    )


class RevisionForm(forms.Form):
    comments = forms.CharField(
        max_length=2000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "What should Align change?"}),
        error_messages={"required": "Write what should change: a revision needs a comment."},
    )


class ApproveForm(forms.Form):
    acceptance_screenshot = forms.CharField(
        widget=forms.HiddenInput,
        strip=True,
        error_messages={
            "required": "The acceptance screenshot is missing; the plan was not approved. "
            "Reload the page and try again."
        },
    )

    def clean_acceptance_screenshot(self):
        # The decoder's own cheap checks (form, type, ALIGN_SCREENSHOT_MAX_BYTES): one rule
        # for the form and the engine. The picture itself is decoded once the case is claimed.
        value = self.cleaned_data["acceptance_screenshot"]
        try:
            check_data_url(value)
        except ScreenshotError as exc:
            raise forms.ValidationError(f"{exc} The plan was not approved.") from None
        return value
