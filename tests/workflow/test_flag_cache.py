"""The engine keeps the waffle flags it read for ALIGN_FLAG_CACHE_SECONDS (workflow/flags.py):
a flag switched off in this process stops new sends at once; switched off by another
process, within that bound."""

import pytest
from django.core.cache import cache
from waffle import get_waffle_flag_model

from align_workflow.workflow import TransitionNotAllowed, engine, flags, send_to_align
from align_workflow.workflow.models import OutboundAttempt
from states import align_case as wf
from tests.support.factories import make_case

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def clock(monkeypatch):
    """The flags' clock, moved forward by hand."""
    now = [1000.0]
    monkeypatch.setattr(flags, "_clock", lambda: now[0])
    return now


def _switch_off_elsewhere(name):
    """What another process's admin does: the row changes and waffle's shared cache is
    invalidated, but no signal reaches this process."""
    get_waffle_flag_model().objects.filter(name=name).update(everyone=False)
    cache.clear()


def _refused_send(case, by):
    with pytest.raises(TransitionNotAllowed) as refused:
        send_to_align(case, by=by)
    return refused.value


def test_a_flag_switched_off_in_this_process_stops_new_sends_at_once(
    flags_on, staff, clock, django_capture_on_commit_callbacks
):
    case = make_case()
    engine.check(case, "create_patient", by=staff)  # the flag is now kept by this process

    with django_capture_on_commit_callbacks(execute=True):  # waffle empties its cache on commit
        flag = get_waffle_flag_model().objects.get(name=wf.FLAG_INITIATE_ORDER)
        flag.everyone = False
        flag.save()

    assert _refused_send(case, staff).code == "flag_off"
    assert not OutboundAttempt.objects.filter(case=case).exists()


def test_a_flag_switched_off_elsewhere_stops_new_sends_within_the_bound(flags_on, staff, clock, settings):
    settings.ALIGN_FLAG_CACHE_SECONDS = 2
    case = make_case()
    engine.check(case, "create_patient", by=staff)

    _switch_off_elsewhere(wf.FLAG_INITIATE_ORDER)

    clock[0] += 1.9  # within the bound, this process may still use what it read
    assert engine.flag_is_on(wf.FLAG_INITIATE_ORDER, staff)
    clock[0] += 0.2  # past it: read again, and new sends are refused
    assert _refused_send(case, staff).code == "flag_off"
    assert not OutboundAttempt.objects.filter(case=case).exists()


def test_a_flag_switched_on_elsewhere_is_seen_within_the_bound(staff, clock, settings):
    settings.ALIGN_FLAG_CACHE_SECONDS = 2
    case = make_case()
    assert _refused_send(case, staff).code == "flag_off"  # the flag is off (or missing)

    Flag = get_waffle_flag_model()
    if not Flag.objects.filter(name=wf.FLAG_INITIATE_ORDER).update(everyone=True):  # no signal, as elsewhere
        Flag.objects.bulk_create([Flag(name=wf.FLAG_INITIATE_ORDER, everyone=True)])
    cache.clear()
    clock[0] += 1.9
    with pytest.raises(TransitionNotAllowed):
        engine.check(case, "create_patient", by=staff)  # still what this process read
    clock[0] += 2.1
    engine.check(case, "create_patient", by=staff)


def test_with_no_keeping_every_check_reads_the_flag(flags_on, staff, clock, settings):
    settings.ALIGN_FLAG_CACHE_SECONDS = 0
    case = make_case()
    engine.check(case, "create_patient", by=staff)

    _switch_off_elsewhere(wf.FLAG_INITIATE_ORDER)

    assert _refused_send(case, staff).code == "flag_off"


def test_a_step_checks_the_flag_through_one_read(flags_on, staff, clock, django_assert_num_queries):
    """Kept: checking the flag again within the bound reads neither the database nor the cache."""
    case = make_case()
    engine.flag_is_on(wf.FLAG_INITIATE_ORDER, staff)
    cache.clear()  # so that waffle would have to read the row again
    with django_assert_num_queries(0):
        assert engine.flag_is_on(wf.FLAG_INITIATE_ORDER, staff)
    assert case.pk
