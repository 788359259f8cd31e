"""The platform's core tables.

Every row that belongs to a tenant carries ``org_id``; every query of the API
filters on it, so one organisation can never see another's rows (an id of
another organisation behaves exactly like an unknown id).

Ids are 64-bit integers. Bluejay's wire format carries some ids as strings and
some as integers; the API layer converts, storage only knows integers.

Enrichment (what the agent posts to ``update-simulation-result``) is kept as it
arrived: one :class:`EnrichmentBatch` per accepted POST, with its idempotency
key, arrival time and source. Its tool calls are rows of a child table keyed
by ``(batch_id, seq)``; tool calls that carry a ``call_id`` are unique per
result, which is how a re-posted payload is deduplicated. Its events and
transcript entries are kept in the batch row itself, as the JSON arrays they
arrived as: they are only ever read whole, per result.

Example:
    >>> from roost.platform.storage.tables import SimulationResult
    >>> SimulationResult.__tablename__
    'simulation_results'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from roost.platform.storage.base import Base, BigId, JSONText, UTCDateTime, utcnow

__all__ = [
    "Agent",
    "ApiKey",
    "DigitalHuman",
    "EnrichmentBatch",
    "IdempotencyRecord",
    "Organisation",
    "Simulation",
    "SimulationDigitalHuman",
    "SimulationResult",
    "SimulationRun",
    "ToolCallRow",
]


def _org_fk(*, index: bool = True) -> Mapped[int]:
    return mapped_column(
        BigId, ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False, index=index
    )


class Organisation(Base):
    """A tenant: owns keys, agents, simulations, runs and results."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class ApiKey(Base):
    """An API key: a public ``key_id`` for lookup and a hash of the secret.

    The secret itself is never stored; see :mod:`roost.platform.auth`.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = _org_fk()
    key_id: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Agent(Base):
    """The voice agent under test and how to reach it (SIP, CHIRP WebSocket...).

    ``config`` holds every field of Bluejay's ``AgentRequest`` as given
    (including SIP and WebSocket credentials, which the caller needs in clear
    to authenticate, so they cannot be hashed).
    """

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = _org_fk()
    name: Mapped[str] = mapped_column(Text, nullable=False)
    external_agent_id: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSONText(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class Simulation(Base):
    """A test suite for one agent: settings plus a set of digital humans."""

    __tablename__ = "simulations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = _org_fk()
    agent_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSONText(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class DigitalHuman(Base):
    """A simulated caller; ``data`` is Bluejay's ``DigitalHumanRequestData``.

    ``data`` keeps Roost's extension keys for tool-call expectations next to
    Bluejay's ``expected_tool_calls``, exactly as posted.
    """

    __tablename__ = "digital_humans"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = _org_fk()
    data: Mapped[dict[str, Any]] = mapped_column(JSONText(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class SimulationDigitalHuman(Base):
    """Membership of a digital human in a simulation (many to many)."""

    __tablename__ = "simulation_digital_humans"

    simulation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("simulations.id", ondelete="CASCADE"), primary_key=True
    )
    digital_human_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("digital_humans.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class SimulationRun(Base):
    """One launch of a simulation; its results are created up front."""

    __tablename__ = "simulation_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = _org_fk()
    simulation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("simulations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    agent_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("agents.id", ondelete="CASCADE"), nullable=False
    )
    # Per-run overrides from queue-simulation-run (sip_uri, phone_number...).
    overrides: Mapped[dict[str, Any]] = mapped_column(JSONText(), nullable=False)
    summary: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class SimulationResult(Base):
    """One simulated call: status lifecycle, enrichment state and evaluation.

    ``status`` follows Bluejay's ``TestResultStatus`` (QUEUED, DISPATCHED,
    RUNNING, CONVERSATION_ENDED, EVALUATING, COMPLETED, INCOMPLETED...).
    ``enrichment_state`` is Roost's: ``pending``, ``received`` or ``missing``
    (see :mod:`roost.platform.lifecycle`). ``evaluation_stale`` is set when
    enrichment arrives after the result was evaluated.
    """

    __tablename__ = "simulation_results"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = _org_fk()
    run_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("simulation_runs.id", ondelete="CASCADE"), nullable=False, index=True
    )
    digital_human_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("digital_humans.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime())
    enrichment_state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    first_enrichment_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_enrichment_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    batch_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    tool_call_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSONText())
    evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    evaluation_stale: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    evaluation_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Set on every change the lifecycle worker must look at (hang-up, new
    # enrichment) and cleared once it has; its poll then reads an index
    # instead of scanning every result.
    needs_attention: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # When a flagged result next needs a look if nothing else happens (the
    # end of the enrichment grace window); NULL means "now".
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index(None, "needs_attention", "wake_at"),)


class EnrichmentBatch(Base):
    """One accepted POST of ``update-simulation-result``, kept as it arrived."""

    __tablename__ = "enrichment_batches"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = _org_fk(index=False)
    result_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("simulation_results.id", ondelete="CASCADE"), nullable=False, index=True
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    body_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    # Who sent it: the API key id and the client (User-Agent; "roost-sdk/x.y"
    # for Roost's SDK, anything else for other Bluejay clients).
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(200))
    tags: Mapped[list[str] | None] = mapped_column(JSONText())
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONText())
    trace_ids: Mapped[list[str] | None] = mapped_column(JSONText())
    # The batch's events and transcript entries as the JSON arrays of wire
    # objects they arrived as (migration 0004): always written with the
    # batch and read whole, so rows of their own bought nothing.
    events: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONText())
    transcript: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONText())
    tool_call_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duplicate_tool_calls: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    event_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    transcript_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # True when the batch reached a result that had already been evaluated.
    late: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


def _batch_key() -> Mapped[int]:
    return mapped_column(
        BigId, ForeignKey("enrichment_batches.id", ondelete="CASCADE"), primary_key=True
    )


# A batch's tool calls are keyed by (batch_id, seq): one B-tree per row, no
# surrogate id, no sequence. On SQLite the table is WITHOUT ROWID, so that
# key is the table itself; ingest writes each row into as few indexes as
# possible.
_CHILD_TABLE_ARGS: dict[str, Any] = {"sqlite_with_rowid": False}


class ToolCallRow(Base):
    """A tool call with Bluejay's fields and Roost's extensions.

    ``result_id`` is repeated here (it is also the batch's) for the unique
    ``(result_id, call_id)`` constraint that deduplicates re-posted calls;
    NULL call ids never collide (SQL NULL semantics, on both backends), so
    calls without an id are all kept.
    """

    __tablename__ = "tool_calls"

    batch_id: Mapped[int] = _batch_key()
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    result_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("simulation_results.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(Text, nullable=False)
    start_offset_ms: Mapped[int] = mapped_column(BigInteger, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONText())
    output: Mapped[Any] = mapped_column(JSONText(), nullable=True)
    call_id: Mapped[str | None] = mapped_column(String(255))
    end_offset_ms: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str | None] = mapped_column(String(16))
    error_type: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("result_id", "call_id"), _CHILD_TABLE_ARGS)


class IdempotencyRecord(Base):
    """The first response to a write that carried an ``Idempotency-Key``.

    Keys are scoped per organisation. ``request_sha256`` fingerprints the
    operation and the raw body, so a reused key with a different request is
    refused instead of silently replaying an unrelated response.
    """

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = _org_fk(index=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    operation: Mapped[str] = mapped_column(String(64), nullable=False)
    request_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    status_code: Mapped[int] = mapped_column(Integer, nullable=False)
    response_body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("org_id", "key"),)
