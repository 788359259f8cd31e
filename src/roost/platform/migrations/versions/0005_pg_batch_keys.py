"""PostgreSQL: a batch is tied to its result by a trigger, not foreign keys.

Revision ID: 0005_pg_batch_keys
Revises: 0004_batch_documents
Create Date: 2026-12-07

With events and transcripts inside the batch (0004), the two foreign keys of
``enrichment_batches`` (to its result and to its organisation) were the
largest remaining share of the database's work per batch in ``perf``: 11 % of
its CPU went to their per-row checks (a ``SELECT ... FOR KEY SHARE`` through
SPI each), and each check also locks and WAL-logs the parent row.

What the keys guarded stays guarded:

- a batch is only written by the ingest writer, in the transaction that
  updates its result's counters. That ``UPDATE`` locks the result and returns
  the rows it changed; the writer rolls the group back and decides it again
  (the request then gets 404) when a result is missing. A delete that commits
  first is therefore seen, and one that comes later waits for the lock;
- ``ON DELETE CASCADE`` becomes a statement-level trigger on
  ``simulation_results`` that deletes the batches of every deleted result
  (those of a run or organisation are deleted through their results), which
  in turn fires 0003's trigger for their tool calls. A batch's organisation
  is always its result's.

SQLite is left as it is: there a foreign-key check is an in-process index
lookup.
"""

from __future__ import annotations

from alembic import op

revision: str = "0005_pg_batch_keys"
down_revision: str | None = "0004_batch_documents"
branch_labels: str | None = None
depends_on: str | None = None

# (column, referenced table) of the foreign keys replaced here.
_KEYS = (("result_id", "simulation_results"), ("org_id", "organisations"))


def _name(column: str, target: str) -> str:
    return f"fk_enrichment_batches_{column}_{target}"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for column, target in _KEYS:
        op.drop_constraint(_name(column, target), "enrichment_batches", type_="foreignkey")
    op.execute(
        """
        CREATE FUNCTION roost_delete_result_batches() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM enrichment_batches
                WHERE result_id IN (SELECT id FROM deleted_results);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER simulation_results_delete_batches AFTER DELETE ON simulation_results "
        "REFERENCING OLD TABLE AS deleted_results FOR EACH STATEMENT "
        "EXECUTE FUNCTION roost_delete_result_batches()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER simulation_results_delete_batches ON simulation_results")
    op.execute("DROP FUNCTION roost_delete_result_batches()")
    for column, target in _KEYS:
        op.create_foreign_key(
            _name(column, target),
            "enrichment_batches",
            target,
            [column],
            ["id"],
            ondelete="CASCADE",
        )
