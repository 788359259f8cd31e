"""PostgreSQL: a batch's rows are tied to it by a trigger, not per-row foreign keys.

Revision ID: 0003_pg_batch_rows
Revises: 0002_webhooks
Create Date: 2026-12-07

PostgreSQL checks a foreign key with a trigger per inserted row. A realistic
``update-simulation-result`` (20 tool calls, 10 events, 40 transcript
entries) fires 90 of them: the database spent 2.3 ms of CPU per request with
these keys and 0.7 ms without (``benchmarks/ingest.py``, see BENCHMARKS.md).
Those rows are only ever written by the ingest writer, in the transaction that creates their batch
and with the batch id it has just allocated, so what the checks guarded
against cannot happen there.

What the foreign keys also did, ``ON DELETE CASCADE``, is kept: a
statement-level trigger on ``enrichment_batches`` deletes the rows of every
batch a statement deletes (including batches deleted by the cascade from
their result, run or organisation), in one set-based statement per table.

SQLite is left as it is: there a foreign-key check is an in-process index
lookup, a few percent of the insert.
"""

from __future__ import annotations

from alembic import op

revision: str = "0003_pg_batch_rows"
down_revision: str | None = "0002_webhooks"
branch_labels: str | None = None
depends_on: str | None = None

# (table, column, referenced table) of the foreign keys replaced here.
_KEYS = (
    ("tool_calls", "batch_id", "enrichment_batches"),
    ("tool_calls", "result_id", "simulation_results"),
    ("events", "batch_id", "enrichment_batches"),
    ("transcript_entries", "batch_id", "enrichment_batches"),
)


def _name(table: str, column: str, target: str) -> str:
    return f"fk_{table}_{column}_{target}"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, target in _KEYS:
        op.drop_constraint(_name(table, column, target), table, type_="foreignkey")
    op.execute(
        """
        CREATE FUNCTION roost_delete_batch_rows() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM tool_calls WHERE batch_id IN (SELECT id FROM deleted_batches);
            DELETE FROM events WHERE batch_id IN (SELECT id FROM deleted_batches);
            DELETE FROM transcript_entries
                WHERE batch_id IN (SELECT id FROM deleted_batches);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER enrichment_batches_delete_rows AFTER DELETE ON enrichment_batches "
        "REFERENCING OLD TABLE AS deleted_batches FOR EACH STATEMENT "
        "EXECUTE FUNCTION roost_delete_batch_rows()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER enrichment_batches_delete_rows ON enrichment_batches")
    op.execute("DROP FUNCTION roost_delete_batch_rows()")
    for table, column, target in _KEYS:
        op.create_foreign_key(
            _name(table, column, target), table, target, [column], ["id"], ondelete="CASCADE"
        )
