"""The state history is append-only: on PostgreSQL a trigger refuses UPDATE and DELETE
of django-fsm-log's StateLog table (inserts, which the engine makes, are untouched).
Other databases rely on the model guards in cases/records.py; there this is a no-op."""

from django.db import migrations

TABLE = "django_fsm_log_statelog"

CREATE = f"""
CREATE OR REPLACE FUNCTION align_statelog_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the state history (%) is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS align_statelog_append_only ON {TABLE};
CREATE TRIGGER align_statelog_append_only
    BEFORE UPDATE OR DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION align_statelog_append_only();
"""

DROP = f"""
DROP TRIGGER IF EXISTS align_statelog_append_only ON {TABLE};
DROP FUNCTION IF EXISTS align_statelog_append_only();
"""


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0003_case_staff_list_order"),
        ("django_fsm_log", "0004_auto_20190131_0341"),
    ]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
