"""Configuration of ``roost serve``: flags, ``ROOST_*`` variables, defaults.

Precedence: an explicit argument (a CLI flag) beats the environment, which
beats the default. Every setting has an environment variable named
``ROOST_<FIELD>`` in upper case (``ROOST_DATABASE_URL``, ``ROOST_PORT``,
``ROOST_MAX_BODY_BYTES``...).

The limits below are the documented caps on what a client may send; the API
answers 413 (body) or 422 (everything else) when one is exceeded, naming the
limit. They are listed, with their defaults, in ``docs/PLATFORM.md``.

Example:
    >>> settings = PlatformSettings.from_env({"ROOST_PORT": "9000"})
    >>> settings.port, settings.host
    (9000, '127.0.0.1')
    >>> PlatformSettings.from_env({}, port=8001).port
    8001
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_type_hints

from roost.platform.storage.database import default_database_url

__all__ = ["Limits", "PlatformSettings", "SettingsError"]

ReevaluatePolicy = Literal["auto", "manual"]
JudgeKind = Literal["auto", "off", "semantic", "openai"]


class SettingsError(ValueError):
    """A configuration value is malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps on client input (all configurable through ``ROOST_<NAME>``).

    Attributes:
        max_body_bytes: Largest request body; larger bodies get 413 before
            they are read in full.
        max_tool_calls: Tool calls in one update-simulation-result batch.
        max_events: Events in one batch.
        max_transcript_entries: Transcript entries in one batch.
        max_tags: Tags in one batch (and on one event).
        max_trace_ids: Trace ids in one batch.
        max_name_length: Characters in a tool name, event title, tag, call id,
            tool status or trace id.
        max_text_length: Characters in any other free-text field
            (descriptions, utterances, error messages).
        max_batches_per_result: Enrichment batches one result accepts.
        max_ids_per_request: Ids in one list (``digital_human_ids``,
            ``simulation_ids``).
        max_results_per_run: Results one queue-simulation-run may create
            (digital humans times their ``num_runs``).
    """

    max_body_bytes: int = 1024 * 1024
    max_tool_calls: int = 1000
    max_events: int = 1000
    max_transcript_entries: int = 5000
    max_tags: int = 100
    max_trace_ids: int = 100
    max_name_length: int = 256
    max_text_length: int = 100_000
    max_batches_per_result: int = 1000
    max_ids_per_request: int = 1000
    max_results_per_run: int = 1000


@dataclass(frozen=True, slots=True)
class PlatformSettings:
    """Everything ``roost serve`` can be told.

    Attributes:
        database_url: SQLAlchemy URL; ``postgresql://`` is mapped to asyncpg.
        host: Interface to bind (loopback by default: expose it on purpose).
        port: TCP port.
        limits: Input caps (see :class:`Limits`).
        enrichment_grace_seconds: How long after hang-up enrichment may take
            before the result's enrichment is declared missing.
        reevaluate_late: ``auto`` re-evaluates a result when enrichment arrives
            after its evaluation; ``manual`` only marks it stale until
            re-evaluate-simulation-result is called.
        lifecycle_interval_seconds: Period of the background task that applies
            deadlines (missing enrichment, due evaluations).
        auth_cache_seconds: How long a verified API key is trusted without a
            database lookup (revocation from another process takes at most
            this long).
        group_commit_max: Most update-simulation-result requests written in
            one transaction.
        ingest_process: Write ``update-simulation-result`` batches from a
            child process (see :mod:`roost.platform.ingest_process`), so that
            the server and the writer use two cores; ``False`` writes from the
            server's own process.
        ingest_lanes: Concurrent ingest transactions on PostgreSQL (SQLite
            always has one). More than one can pay when the database is far
            away; on one machine one measured best.
        bench_echo: Mount ``POST /_bench/echo`` (benchmark baseline only).
        judge: Who answers model-judged checks (``judge`` matchers,
            ``judge_fallback``): ``auto`` (the offline semantic judge when its
            model package is installed, else none), ``off``, ``semantic`` or
            ``openai`` (see :mod:`roost.platform.judges`).
        judge_url: OpenAI-compatible base URL (``.../v1``) for ``openai``.
        judge_model: Model name for ``openai``.
        judge_api_key: Bearer token for ``openai`` (never shown in ``repr``).
        judge_timeout_seconds: Time one judge question may take.
        judge_concurrency: Judge questions in flight at once.
    """

    database_url: str = field(default_factory=default_database_url)
    host: str = "127.0.0.1"
    port: int = 8000
    limits: Limits = field(default_factory=Limits)
    enrichment_grace_seconds: float = 120.0
    reevaluate_late: ReevaluatePolicy = "auto"
    lifecycle_interval_seconds: float = 1.0
    auth_cache_seconds: float = 2.0
    group_commit_max: int = 256
    ingest_process: bool = True
    ingest_lanes: int = 1
    bench_echo: bool = False
    judge: JudgeKind = "auto"
    judge_url: str = ""
    judge_model: str = ""
    judge_api_key: str = field(default="", repr=False)
    judge_timeout_seconds: float = 30.0
    judge_concurrency: int = 4

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> PlatformSettings:
        """Build settings from ``ROOST_*`` variables, then apply ``overrides``.

        ``None`` overrides are ignored (an omitted CLI flag), and override names
        may also be :class:`Limits` fields.

        Raises:
            SettingsError: a variable or override has the wrong type or range.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        limit_values: dict[str, Any] = {}
        top_types = get_type_hints(cls)
        limit_types = get_type_hints(Limits)
        for name, kind in top_types.items():
            if name == "limits":
                continue
            raw = env.get(f"ROOST_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = _convert(f"ROOST_{name.upper()}", raw, kind)
        for name, kind in limit_types.items():
            raw = env.get(f"ROOST_{name.upper()}")
            if raw is not None and raw != "":
                limit_values[name] = _convert(f"ROOST_{name.upper()}", raw, kind)
        for name, value in overrides.items():
            if value is None:
                continue
            if name in limit_types:
                limit_values[name] = _convert(
                    f"--{name.replace('_', '-')}", value, limit_types[name]
                )
            elif name in top_types and name != "limits":
                values[name] = _convert(f"--{name.replace('_', '-')}", value, top_types[name])
            elif name == "limits":
                values["limits"] = value
            else:
                raise SettingsError(f"unknown setting {name!r}")
        if limit_values:
            values["limits"] = dataclasses.replace(values.get("limits", Limits()), **limit_values)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check ranges; raise :class:`SettingsError` naming the bad value."""
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be between 0 and 65535, not {self.port}")
        for name in ("enrichment_grace_seconds", "auth_cache_seconds"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative")
        if self.lifecycle_interval_seconds <= 0:
            raise SettingsError("lifecycle_interval_seconds must be positive")
        if self.group_commit_max < 1:
            raise SettingsError("group_commit_max must be at least 1")
        if not 1 <= self.ingest_lanes <= 64:
            raise SettingsError("ingest_lanes must be between 1 and 64")
        if self.judge_timeout_seconds <= 0:
            raise SettingsError("judge_timeout_seconds must be positive")
        if self.judge_concurrency < 1:
            raise SettingsError("judge_concurrency must be at least 1")
        if self.judge == "openai" and not (self.judge_url and self.judge_model):
            raise SettingsError("ROOST_JUDGE=openai needs ROOST_JUDGE_URL and ROOST_JUDGE_MODEL")
        if self.judge_url and not self.judge_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"ROOST_JUDGE_URL must start with http:// or https://, not {self.judge_url!r}"
            )
        for limit in dataclasses.fields(Limits):
            if getattr(self.limits, limit.name) < 1:
                raise SettingsError(f"{limit.name} must be at least 1")


def _convert(source: str, raw: Any, kind: Any) -> Any:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{source} must be true or false, not {raw!r}")
    if kind is int:
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{source} must be an integer, not {raw!r}") from None
    if kind is float:
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{source} must be a number, not {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise SettingsError(f"{source} must be a finite number, not {raw!r}")
        return value
    choices = get_args(kind)
    if choices and all(isinstance(choice, str) for choice in choices):
        if raw not in choices:
            raise SettingsError(f"{source} must be one of {', '.join(choices)}, not {raw!r}")
        return raw
    return str(raw)
