"""System checks for settings that would otherwise fail quietly."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from align_workflow.workflow.checks import check_execution


def ids(problems):
    return [p.id for p in problems]


@override_settings(ALIGN_EXECUTION="Celery")
def test_an_unknown_execution_mode_is_an_error_not_a_silent_inline_run():
    assert ids(check_execution()) == ["align_workflow.E001"]
    with pytest.raises(SystemCheckError, match="ALIGN_EXECUTION is 'Celery'"):
        call_command("check")


@override_settings(ALIGN_EXECUTION="celery", REDIS_URL="redis://cache:6379/1", CELERY_BROKER_URL="redis://cache:6379/1")
def test_celery_sharing_the_cache_database_is_warned_about():
    assert ids(check_execution()) == ["align_workflow.W001"]


@override_settings(ALIGN_EXECUTION="celery", REDIS_URL="redis://cache:6379/1", CELERY_BROKER_URL="redis://cache:6379/2")
def test_celery_with_a_broker_database_of_its_own_passes():
    assert check_execution() == []


@override_settings(ALIGN_EXECUTION="inline", REDIS_URL="redis://cache:6379/1", CELERY_BROKER_URL="redis://cache:6379/1")
def test_inline_does_not_care_about_the_broker():
    assert check_execution() == []
