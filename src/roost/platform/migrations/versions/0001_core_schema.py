"""Core schema: organisations, keys, agents, simulations, runs, results, enrichment.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-25

Types are spelled as plain SQL types here (``Text`` for JSON text,
``DateTime(timezone=True)`` for timestamps) so the migration does not depend on
application classes that may change later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001_core"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# BIGINT ids, except INTEGER on SQLite where only INTEGER PRIMARY KEY is the
# autoincrementing rowid alias.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False)


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, ID, sa.ForeignKey(f"{target}.id", ondelete="CASCADE"), nullable=nullable)


def _batch_key() -> sa.Column[int]:
    return sa.Column(
        "batch_id",
        ID,
        sa.ForeignKey("enrichment_batches.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )


def _index(table: str, *columns: str) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns))


def upgrade() -> None:
    op.create_table(
        "organisations",
        _id(),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "api_keys",
        _id(),
        _fk("org_id", "organisations"),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    _index("api_keys", "org_id")
    op.create_table(
        "agents",
        _id(),
        _fk("org_id", "organisations"),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("external_agent_id", sa.Text()),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    _index("agents", "org_id")
    op.create_table(
        "simulations",
        _id(),
        _fk("org_id", "organisations"),
        _fk("agent_id", "agents"),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    _index("simulations", "org_id")
    _index("simulations", "agent_id")
    op.create_table(
        "digital_humans",
        _id(),
        _fk("org_id", "organisations"),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    _index("digital_humans", "org_id")
    op.create_table(
        "simulation_digital_humans",
        sa.Column(
            "simulation_id",
            ID,
            sa.ForeignKey("simulations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "digital_human_id",
            ID,
            sa.ForeignKey("digital_humans.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
    )
    op.create_table(
        "simulation_runs",
        _id(),
        _fk("org_id", "organisations"),
        _fk("simulation_id", "simulations"),
        _fk("agent_id", "agents"),
        sa.Column("overrides", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
    )
    _index("simulation_runs", "org_id")
    _index("simulation_runs", "simulation_id")
    op.create_table(
        "simulation_results",
        _id(),
        _fk("org_id", "organisations"),
        _fk("run_id", "simulation_runs"),
        _fk("digital_human_id", "digital_humans"),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error_code", sa.String(64)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("start_time", TS),
        sa.Column("end_time", TS),
        sa.Column("enrichment_state", sa.String(16), nullable=False),
        sa.Column("first_enrichment_at", TS),
        sa.Column("last_enrichment_at", TS),
        sa.Column("batch_count", sa.Integer(), nullable=False),
        sa.Column("tool_call_count", sa.Integer(), nullable=False),
        sa.Column("evaluation", sa.Text()),
        sa.Column("evaluated_at", TS),
        sa.Column("evaluation_stale", sa.Boolean(), nullable=False),
        sa.Column("evaluation_count", sa.Integer(), nullable=False),
        sa.Column("needs_attention", sa.Boolean(), nullable=False),
        sa.Column("wake_at", TS),
    )
    _index("simulation_results", "org_id")
    _index("simulation_results", "run_id")
    _index("simulation_results", "needs_attention", "wake_at")
    op.create_table(
        "enrichment_batches",
        _id(),
        _fk("org_id", "organisations"),
        _fk("result_id", "simulation_results"),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.String(32)),
        sa.Column("source", sa.String(200)),
        sa.Column("tags", sa.Text()),
        sa.Column("metadata", sa.Text()),
        sa.Column("trace_ids", sa.Text()),
        sa.Column("tool_call_count", sa.Integer(), nullable=False),
        sa.Column("duplicate_tool_calls", sa.Integer(), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("transcript_count", sa.Integer(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
    )
    _index("enrichment_batches", "result_id")
    # Batch rows: keyed by (batch_id, seq), WITHOUT ROWID on SQLite.
    op.create_table(
        "tool_calls",
        _batch_key(),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        _fk("result_id", "simulation_results"),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("start_offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("parameters", sa.Text()),
        sa.Column("output", sa.Text()),
        sa.Column("call_id", sa.String(255)),
        sa.Column("end_offset_ms", sa.BigInteger()),
        sa.Column("duration_ms", sa.Float()),
        sa.Column("status", sa.String(16)),
        sa.Column("error_type", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.UniqueConstraint("result_id", "call_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "events",
        _batch_key(),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("start_offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_offset_ms", sa.BigInteger()),
        sa.Column("description", sa.Text()),
        sa.Column("tags", sa.Text()),
        sa.Column("metadata", sa.Text()),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "transcript_entries",
        _batch_key(),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("start_offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("utterance", sa.Text(), nullable=False),
        sa.Column("filler_utterance", sa.Boolean()),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "idempotency_records",
        _id(),
        _fk("org_id", "organisations"),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("org_id", "key"),
    )


def downgrade() -> None:
    for table in (
        "idempotency_records",
        "transcript_entries",
        "events",
        "tool_calls",
        "enrichment_batches",
        "simulation_results",
        "simulation_runs",
        "simulation_digital_humans",
        "digital_humans",
        "simulations",
        "agents",
        "api_keys",
        "organisations",
    ):
        op.drop_table(table)
