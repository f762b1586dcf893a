"""Indexes for the support analytics (portals.metrics): the cases created since a date,
and django-fsm-log's StateLog rows written since a date (its table has no index on the
timestamp; the index is added here, as 0004 adds its append-only trigger)."""

from django.db import migrations, models

TABLE = "django_fsm_log_statelog"
INDEX = "statelog_ct_timestamp"


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0007_case_work_queue_orders"),
        ("django_fsm_log", "__latest__"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="case",
            index=models.Index(fields=["created"], name="case_created"),
        ),
        migrations.RunSQL(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON {TABLE} (content_type_id, timestamp)",
            f"DROP INDEX IF EXISTS {INDEX}",
        ),
    ]
