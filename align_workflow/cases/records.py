"""The audit trail is append-only.

Four kinds of rows are the record of what happened to a case: the state history
(django-fsm-log's `StateLog`), case notes (`CaseNote`), calls to Align
(`OutboundAttempt`) and events from Align (`InboundEvent`). None of them is ever
deleted, and what they record is never rewritten:

- `CaseNote` and `StateLog`: every field is the record; a row is only ever inserted.
- `OutboundAttempt` and `InboundEvent` have a *lifecycle*: an attempt is written before
  its request goes out and then moves pending -> in flight -> succeeded / failed /
  skipped; an event is stored before it is applied and then becomes applied, ignored or
  failed. Those progress fields (each model's `LIFECYCLE_FIELDS`) may be updated by the
  engine; every other field (which case, which step, the idempotency key, the attempt
  number, the actor, the parameters, the event's id, type, body and times) is the record
  and never changes.

The models refuse, with `RecordIsImmutable`: `delete()` of a row or a queryset, a
queryset `update()` or `bulk_update()` that names a record field, and `save()` of an
existing row whose record fields changed (an allowed `save()` writes the lifecycle
fields only). `StateLog` belongs to django-fsm-log, so it is guarded by signals (save
and delete of an instance) and by a patch of its queryset's `update()` and `delete()`;
on PostgreSQL a trigger refuses any UPDATE or DELETE of its table as well (migration
cases 0004). Migrations use historical models without these methods, so a data
migration can still correct a row deliberately.
"""

from django.db import models
from django.db.models.signals import pre_delete, pre_save
from django_fsm_log.managers import StateLogQuerySet
from django_fsm_log.models import StateLog


class RecordIsImmutable(Exception):
    """A change or deletion of the audit trail was refused."""


def _record_fields(model):
    lifecycle = set(getattr(model, "LIFECYCLE_FIELDS", ()))
    return [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in lifecycle]


class AppendOnlyQuerySet(models.QuerySet):
    def delete(self):
        raise RecordIsImmutable(
            f"{self.model._meta.verbose_name_plural} are part of the audit trail and are never deleted."
        )

    delete.queryset_only = True

    def update(self, **kwargs):
        self._refuse_record_fields(kwargs)
        return super().update(**kwargs)

    def bulk_update(self, objs, fields, batch_size=None):
        self._refuse_record_fields(fields)
        return super().bulk_update(objs, fields, batch_size=batch_size)

    def _refuse_record_fields(self, names):
        record = {f.name for f in _record_fields(self.model)} | {f.attname for f in _record_fields(self.model)}
        touched = sorted(set(names) & record)
        if touched:
            raise RecordIsImmutable(
                f"{', '.join(touched)} of a {self.model._meta.verbose_name} is part of the "
                "audit trail and never changes."
            )


class AppendOnlyModel(models.Model):
    """A row of the audit trail: inserted once; only its LIFECYCLE_FIELDS may change."""

    LIFECYCLE_FIELDS: tuple[str, ...] = ()

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, update_fields=None, force_insert=False, **kwargs):
        if self._state.adding or force_insert:
            super().save(*args, update_fields=update_fields, force_insert=force_insert, **kwargs)
            self._remember_record()
            return
        record = {f.name for f in _record_fields(type(self))}
        if update_fields is not None:
            touched = sorted(set(update_fields) & record)
            if touched:
                raise RecordIsImmutable(
                    f"{', '.join(touched)} of a {self._meta.verbose_name} is part of the audit trail and never changes."
                )
        else:
            snapshot = getattr(self, "_record_snapshot", None)
            if snapshot is None:  # not loaded from the database: compare with the stored row
                stored = type(self)._base_manager.filter(pk=self.pk).values(*self._record_values()).first() or {}
                snapshot = stored
            changed = sorted(name for name, value in self._record_values().items() if snapshot.get(name) != value)
            if changed:
                raise RecordIsImmutable(
                    f"{', '.join(changed)} of a {self._meta.verbose_name} is part of the audit trail and never changes."
                )
            update_fields = list(self.LIFECYCLE_FIELDS)
            if not update_fields:
                raise RecordIsImmutable(
                    f"A {self._meta.verbose_name} is part of the audit trail: it is written once and never changed."
                )
        super().save(*args, update_fields=update_fields, **kwargs)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._remember_record()
        return instance

    def refresh_from_db(self, *args, **kwargs):
        super().refresh_from_db(*args, **kwargs)
        self._remember_record()

    def _record_values(self):
        return {f.attname: getattr(self, f.attname) for f in _record_fields(type(self)) if f.attname in self.__dict__}

    def _remember_record(self):
        self._record_snapshot = self._record_values()

    def delete(self, *args, **kwargs):
        raise RecordIsImmutable(f"A {self._meta.verbose_name} is part of the audit trail and is never deleted.")


# --- django-fsm-log's StateLog ----------------------------------------------------------


def _refuse_statelog_save(sender, instance, raw=False, **kwargs):
    if not raw and not instance._state.adding:
        raise RecordIsImmutable("A state history row is written once and never changed.")


def _refuse_statelog_delete(sender, instance, **kwargs):
    raise RecordIsImmutable("The state history is never deleted.")


def _refuse_instance_delete(self, *args, **kwargs):
    raise RecordIsImmutable("The state history is never deleted.")


def _refuse_queryset_delete(self):
    raise RecordIsImmutable("The state history is never deleted.")


_refuse_queryset_delete.queryset_only = True


def _refuse_queryset_update(self, **kwargs):
    raise RecordIsImmutable("The state history is written once and never changed.")


def guard_statelog():
    """Connect the StateLog guards (called from the cases app's ready())."""
    pre_save.connect(_refuse_statelog_save, sender=StateLog, dispatch_uid="statelog-append-only-save")
    pre_delete.connect(_refuse_statelog_delete, sender=StateLog, dispatch_uid="statelog-append-only-delete")
    StateLog.delete = _refuse_instance_delete
    StateLogQuerySet.delete = _refuse_queryset_delete
    StateLogQuerySet.update = _refuse_queryset_update
    StateLogQuerySet.bulk_update = lambda self, *a, **k: _refuse_queryset_update(self)
