"""Webhook endpoints and the durable delivery queue (tables on the platform's Base).

An endpoint belongs to one organisation. Its signing secret is stored as is:
the server must compute HMACs with it, so it cannot be hashed (it is shown
once, at creation or rotation, and never listed). A rotation keeps the previous
secret until ``previous_secret_expires_at``.

A delivery is one event for one endpoint. It is inserted in the transaction
that produced the event (:func:`~roost.platform.webhooks.service.emit`), so a
committed status change always has its webhook queued, and it is kept after
the last attempt (``delivered`` or ``failed``) as the delivery log. ``body`` is
the exact JSON text sent on every attempt, which is what the signature covers.
The worker leases a delivery (``lease_owner``, ``lease_expires_at``) before
sending it, so two server processes never send the same attempt.

Example:
    >>> from roost.platform.webhooks.tables import WebhookDelivery
    >>> WebhookDelivery.__tablename__
    'webhook_deliveries'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from roost.platform.storage.base import Base, BigId, JSONText, UTCDateTime, utcnow

__all__ = ["WebhookDelivery", "WebhookEndpoint"]


class WebhookEndpoint(Base):
    """A URL that receives an organisation's webhook events."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    url: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100), nullable=False)
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    event_types: Mapped[list[str] | None] = mapped_column(JSONText())
    """Event types delivered here; ``None`` for all."""
    agent_ids: Mapped[list[int] | None] = mapped_column(JSONText())
    """Agents whose events are delivered here; ``None`` for all."""
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def secrets_at(self, now: datetime) -> tuple[str, list[str]]:
        """``(secret for X-Bluejay-Signature, every valid secret, current first)``."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and expires > now:
            return self.previous_secret, [self.secret, self.previous_secret]
        return self.secret, [self.secret]


class WebhookDelivery(Base):
    """One event for one endpoint, with its delivery state."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index(None, "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    endpoint_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False, index=True
    )
    event_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    """``pending``, ``delivered`` or ``failed``."""
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_response: Mapped[str | None] = mapped_column(Text)
    """The first bytes of the receiver's last answer, for debugging."""
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def summary(self) -> dict[str, Any]:
        """The delivery as the API lists it (without the body)."""
        return {
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "status": self.status,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at if self.status == "pending" else None,
            "last_attempt_at": self.last_attempt_at,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at,
        }
