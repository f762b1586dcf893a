"""Trigram indexes (pg_trgm, GIN) for the staff search, on PostgreSQL only.

The staff list searches `icontains` on the case number and the patient's MRN, first and
last name; Django sends that as `UPPER(column::text) LIKE UPPER('%term%')`, which a
trigram index on the same expression can answer for a term of three characters or more.
On any other database this migration does nothing.

`CREATE EXTENSION pg_trgm` needs a role allowed to create it (a superuser, or the
database's owner on PostgreSQL 13+ where pg_trgm is a trusted extension). When the
extension is already installed nothing is asked of the role; when it cannot be
installed the migration stops with what to run, and `migrate` can be run again after.
"""

from django.db import migrations
from django.db.utils import DatabaseError

# (index name, table, column): the columns the staff search compares.
INDEXES = (
    ("case_number_trgm", "cases_case", "case_number"),
    ("patient_mrn_trgm", "cases_patient", "mrn"),
    ("patient_first_name_trgm", "cases_patient", "first_name"),
    ("patient_last_name_trgm", "cases_patient", "last_name"),
)


class TrigramUnavailable(RuntimeError):
    """pg_trgm is not installed and this database role cannot install it."""


def _ensure_pg_trgm(cursor, database):
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    if cursor.fetchone():
        return
    cursor.execute("SAVEPOINT pg_trgm_create")
    try:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        cursor.execute("ROLLBACK TO SAVEPOINT pg_trgm_create")
        raise TrigramUnavailable(
            f"The staff search's trigram indexes need the PostgreSQL extension pg_trgm, and this database "
            f"role cannot install it ({str(exc).strip().splitlines()[0]}). Ask a database superuser to run "
            f'"CREATE EXTENSION IF NOT EXISTS pg_trgm;" in the database "{database}" (on Debian/Ubuntu the '
            "extension comes with the postgresql-contrib package), then run migrate again."
        ) from None
    cursor.execute("RELEASE SAVEPOINT pg_trgm_create")


def create_indexes(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        _ensure_pg_trgm(cursor, connection.settings_dict["NAME"])
        for name, table, column in INDEXES:
            cursor.execute(
                f'CREATE INDEX IF NOT EXISTS {name} ON {table} USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
            )


def drop_indexes(apps, schema_editor):
    # The extension stays: other things in the database may use it.
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name, _table, _column in INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0005_case_aligner_purchase_reporter"),
    ]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
