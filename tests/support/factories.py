"""Factories for the clinic's side of a case."""

import hashlib
import itertools
from datetime import date

import factory
from django.contrib.auth import get_user_model

from align_workflow.cases.models import Case, CaseAsset, Patient, PhotoAssessment, Prescription, Provider

_seq = itertools.count(1)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    user = factory.SubFactory(UserFactory, username=factory.Sequence(lambda n: f"provider{n}"))
    account_name = factory.Sequence(lambda n: f"Practice {n}")


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    first_name = "Jane"
    last_name = "Doe"
    date_of_birth = date(1990, 5, 17)
    gender = "F"
    mrn = factory.Sequence(lambda n: f"MRN{n:06d}")
    email = factory.Sequence(lambda n: f"patient{n}@example.com")
    phone = "555-0100"
    address_line1 = "1 Main St"
    city = "Springfield"
    state = "IL"
    zip_code = "62701"


class CaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Case

    case_number = factory.Sequence(lambda n: f"C{n:06d}")
    patient = factory.SubFactory(PatientFactory)


def make_case(
    *,
    provider=None,
    lab=Prescription.Lab.ALIGN,
    photos=PhotoAssessment.Status.APPROVED,
    stl_files=2,
    state=None,
    **case_fields,
):
    """An Align case with a prescription, a photo assessment and `stl_files` STL scans."""
    case = CaseFactory(**case_fields)
    if state is not None:
        Case.objects.filter(pk=case.pk).update(state=state)
        case.state = state
    Prescription.objects.create(case=case, provider=provider or ProviderFactory(), lab=lab)
    if photos is not None:
        PhotoAssessment.objects.create(case=case, status=photos)
    kinds = itertools.cycle([CaseAsset.Kind.STL_UPPER, CaseAsset.Kind.STL_LOWER])
    for _ in range(stl_files):
        kind = next(kinds)
        name = f"{case.case_number}-{kind.lower()}-{next(_seq)}.stl"
        CaseAsset.objects.create(
            case=case,
            kind=kind,
            filename=name,
            sha256=hashlib.sha256(name.encode()).hexdigest(),
            vault_id=f"vault-{name}",
            external_key=f"key-{name}",
        )
    return case
