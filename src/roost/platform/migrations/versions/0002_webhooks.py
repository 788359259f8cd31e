"""Webhook endpoints and the durable delivery queue.

Revision ID: 0002_webhooks
Revises: 0001_core
Create Date: 2026-11-25

Mirrors :mod:`roost.platform.webhooks.tables`, spelled with plain SQL types
like the core revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_webhooks"
down_revision: str | None = "0001_core"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _fk(name: str, target: str) -> sa.Column[int]:
    return sa.Column(name, ID, sa.ForeignKey(f"{target}.id", ondelete="CASCADE"), nullable=False)


def _index(table: str, *columns: str) -> None:
    op.create_index(op.f(f"ix_{table}_{'_'.join(columns)}"), table, list(columns))


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        _fk("org_id", "organisations"),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("previous_secret", sa.String(100)),
        sa.Column("previous_secret_expires_at", TS),
        sa.Column("event_types", sa.Text()),
        sa.Column("agent_ids", sa.Text()),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("secret_rotated_at", TS),
    )
    _index("webhook_endpoints", "org_id")
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        _fk("org_id", "organisations"),
        _fk("endpoint_id", "webhook_endpoints"),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_attempt_at", TS),
        sa.Column("last_status_code", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("last_response", sa.Text()),
        sa.Column("delivered_at", TS),
    )
    _index("webhook_deliveries", "org_id")
    _index("webhook_deliveries", "endpoint_id")
    _index("webhook_deliveries", "event_id")
    _index("webhook_deliveries", "status", "next_attempt_at")


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_endpoints")
