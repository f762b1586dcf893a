"""Bench-only models: the same case transition written the two other ways people would.

- FsmCase: the Django standard stack, django-fsm-2's FSMField and @transition with
  ConcurrentTransitionMixin, logged by django-fsm-log's own signal handler.
- FaqCase: the pattern pytransitions' FAQ shows for Django, a Machine per instance.
"""

from django.db import models
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition
from django_fsm_log.decorators import fsm_log_by, fsm_log_description
from transitions import Machine

from states import align_case as wf


class _CaseFields(models.Model):
    case_number = models.CharField(max_length=40, unique=True)
    # Same indexes as Case, so every variant updates the same index entries.
    state_changed_at = models.DateTimeField(default=timezone.now, db_index=True)
    needs_attention = models.BooleanField(default=False, db_index=True)
    carrier = models.CharField(max_length=60, blank=True)
    tracking_number = models.CharField(max_length=80, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class FsmCase(ConcurrentTransitionMixin, _CaseFields):
    state = FSMField(default=wf.ACCEPTED, choices=[(s, s) for s in wf.STATES], protected=False, db_index=True)

    @fsm_log_by
    @fsm_log_description
    @transition(field=state, source=wf.ACCEPTED, target=wf.SHIPPING)
    def ship(self, by=None, description=None, carrier="", tracking_number=""):
        self.carrier = carrier
        self.tracking_number = tracking_number
        self.shipped_at = timezone.now()
        self.state_changed_at = timezone.now()


class FaqCase(_CaseFields):
    state = models.CharField(max_length=40, default=wf.ACCEPTED, db_index=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # As in the FAQ: one Machine bound to each model instance.
        self.machine = Machine(
            model=self,
            states=list(wf.STATES),
            transitions=[{"trigger": t.trigger, "source": list(t.source), "dest": t.dest} for t in wf.TRANSITIONS],
            initial=self.state,
            auto_transitions=False,
        )


class BareEvent(models.Model):
    """Figure 7's baseline: a signed event's body, stored once per event id."""

    event_id = models.CharField(max_length=100, unique=True)
    body = models.TextField()
