"""The portals' top bar: what waits for the person signed in ("2 plans wait for you";
staff: the cases needing attention), with links, and nothing about other people's cases."""

import re

import pytest
from django.test import Client

from align_workflow.cases.models import Case
from states import align_case as wf
from tests.support.factories import ProviderFactory, make_case

pytestmark = pytest.mark.django_db


def waiting(page) -> str:
    match = re.search(rb'<details class="topbar-waiting[^"]*">(.*?)</details>', page.content, re.S)
    assert match, "no waiting list in the top bar"
    return match.group(1).decode()


def test_a_provider_sees_the_plans_waiting_for_them(provider_client, provider):
    mine = [make_case(provider=provider, state=wf.PLAN_RECEIVED) for _ in range(2)]
    make_case(provider=provider, state=wf.ACCEPTED)
    make_case(provider=ProviderFactory(), state=wf.PLAN_RECEIVED)  # someone else's

    html = waiting(provider_client.get("/provider/"))
    assert "<summary>2 plans wait for you</summary>" in html
    assert sorted(re.findall(r'href="/provider/cases/(\d+)/"', html)) == sorted(str(c.pk) for c in mine)
    assert 'href="/provider/notifications/"' in html


def test_one_plan_reads_in_the_singular_and_none_says_so(provider_client, provider):
    assert "<summary>0 plans wait for you</summary>" in waiting(provider_client.get("/provider/"))
    make_case(provider=provider, state=wf.PLAN_RECEIVED)
    assert "<summary>1 plan waits for you</summary>" in waiting(provider_client.get("/provider/"))


def test_staff_see_the_cases_needing_attention(client, staff):
    flagged = make_case(state=wf.ELIGIBLE)
    Case.objects.filter(pk=flagged.pk).update(needs_attention=True)
    make_case(state=wf.PLAN_RECEIVED)
    client.force_login(staff)
    html = waiting(client.get("/staff/"))
    assert "<summary>1 case needs attention</summary>" in html
    assert f'href="/staff/cases/{flagged.pk}/"' in html


def test_a_long_list_shows_five_and_counts_the_rest(provider_client, provider):
    for _ in range(7):
        make_case(provider=provider, state=wf.PLAN_RECEIVED)
    html = waiting(provider_client.get("/provider/"))
    assert "<summary>7 plans wait for you</summary>" in html
    assert len(re.findall(r'href="/provider/cases/', html)) == 5
    assert "and 2 more" in html


def test_nobody_signed_in_sees_no_list(db):
    assert b'class="waiting' not in Client().get("/accounts/login/").content
