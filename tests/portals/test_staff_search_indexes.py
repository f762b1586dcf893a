"""The staff search on PostgreSQL: trigram indexes on the searched columns (migration
cases 0006) and a query shaped so that PostgreSQL can use them; the same matches
whichever shape a term gets."""

import importlib
import uuid

import pytest
from django.db import connection

from align_workflow.portals.selectors import staff_cases
from tests.support.factories import PatientFactory, make_case

pytestmark = pytest.mark.django_db

migration = importlib.import_module("align_workflow.cases.migrations.0006_search_trigram_indexes")
TRGM_INDEXES = {name for name, _table, _column in migration.INDEXES}


def _plan(queryset):
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a table this small would be read whole anyway
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_migration_made_the_four_trigram_indexes(require_postgres):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(%s)", [sorted(TRGM_INDEXES)])
        found = dict(cursor.fetchall())
    assert set(found) == TRGM_INDEXES
    assert all("gin" in d and "gin_trgm_ops" in d and "upper(" in d for d in found.values()), found


def test_a_search_of_three_characters_or_more_can_use_the_trigram_indexes(require_postgres):
    make_case(case_number="QA-1", patient=PatientFactory(last_name="Quill"))
    plan = _plan(staff_cases(q="quill")[:25])
    assert "case_number_trgm" in plan and "patient_last_name_trgm" in plan, plan
    assert "patient_mrn_trgm" in plan and "patient_first_name_trgm" in plan, plan


@pytest.mark.parametrize("term", ["ui", "uil", "QUILL", "zeb", "Ze", "4711", "71", "FIND", "nd-9", "d-"])
def test_short_and_long_terms_match_the_same_columns_in_any_case(term):
    found = make_case(
        case_number="FIND-9", patient=PatientFactory(first_name="Zebediah", last_name="Quill", mrn="M-4711")
    )
    make_case(case_number="OTHER-1", patient=PatientFactory(first_name="Ann", last_name="Brown", mrn="M-1234"))
    assert list(staff_cases(q=term)) == [found]


def test_several_terms_must_all_match():
    found = make_case(case_number="FIND-9", patient=PatientFactory(first_name="Zebediah", last_name="Quill"))
    make_case(case_number="FIND-8", patient=PatientFactory(first_name="Ann", last_name="Quill"))
    assert list(staff_cases(q="quill zebediah")) == [found]


def test_without_the_right_to_install_pg_trgm_the_migration_says_what_to_run(require_postgres):
    role = f"no_extensions_{uuid.uuid4().hex[:10]}"
    with connection.cursor() as cursor:  # all inside the test's transaction, rolled back after
        cursor.execute("DROP EXTENSION pg_trgm CASCADE")
        cursor.execute(f"CREATE ROLE {role} NOLOGIN")
        cursor.execute(f"SET LOCAL ROLE {role}")
        with pytest.raises(migration.TrigramUnavailable) as refused:
            migration._ensure_pg_trgm(cursor, "clinic")
        cursor.execute("RESET ROLE")
    message = str(refused.value)
    assert "permission denied" in message
    assert 'run "CREATE EXTENSION IF NOT EXISTS pg_trgm;" in the database "clinic"' in message
    assert "then run migrate again" in message
