"""Pydantic models of Bluejay's agent, simulation and digital-human operations.

Field names, types, defaults and enums follow ``bluejay-openapi-subset.json``
(``AgentRequest``, ``AgentPydantic``, ``SimulationRequest``,
``DigitalHumanRequestData``...); a test compares the generated schema with the
subset. Like Bluejay's FastAPI service, unknown keys in requests are ignored,
except on digital humans and expected tool calls, which keep them: that is
where Roost's tool-call expectation extensions live.

Example:
    >>> AgentRequest(name="a", system_prompt="p", knowledge_base="", goals=[]).type
    <AgentType.INBOUND: 'INBOUND'>
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AccentType",
    "AgentMode",
    "AgentPydantic",
    "AgentRequest",
    "AgentResponse",
    "AgentType",
    "AgentUpdateRequest",
    "AgentUpdateResponse",
    "AudioQualityType",
    "BackgroundNoiseType",
    "ConnectionType",
    "CreateDigitalHumanRequest",
    "DigitalHumanRequestData",
    "DigitalHumanResponse",
    "DigitalHumanResponseData",
    "DigitalHumansSettings",
    "ExpectedToolCall",
    "FluencyType",
    "GenderType",
    "LanguageType",
    "SimulationPydantic",
    "SimulationRequest",
    "SimulationResponse",
    "SimulationType",
    "Trait",
    "VerbosityType",
    "VoiceSpeedType",
]


class AgentType(StrEnum):
    """Who places the call: Bluejay's digital human (INBOUND) or the agent."""

    INBOUND = "INBOUND"
    OUTBOUND = "OUTBOUND"


class AgentMode(StrEnum):
    """Voice or text agent."""

    VOICE = "VOICE"
    TEXT = "TEXT"


class ConnectionType(StrEnum):
    """How the platform reaches the agent."""

    SMS = "SMS"
    HTTP_WEBHOOK = "HTTP_WEBHOOK"
    PHONE = "PHONE"
    SIP = "SIP"
    WEBSOCKET = "WEBSOCKET"
    LIVEKIT = "LIVEKIT"
    PIPECAT = "PIPECAT"


class SimulationType(StrEnum):
    """How a simulation's calls are scheduled."""

    sequential = "sequential"
    parallel = "parallel"
    max_concurrent = "max_concurrent"


class LanguageType(StrEnum):
    """Language of a digital human."""

    en = "en"
    es = "es"
    pt = "pt"
    ja = "ja"
    tr = "tr"
    hi = "hi"
    ar = "ar"
    ru = "ru"
    zh = "zh"
    ml = "ml"
    fr = "fr"
    yue = "yue"
    vi = "vi"
    de = "de"


class AccentType(StrEnum):
    """Accent of a digital human."""

    multilingual = "multilingual"
    american = "american"
    american2 = "american2"
    southern = "southern"
    italian = "italian"
    indian = "indian"
    british = "british"
    australian = "australian"
    mexican = "mexican"
    spanish = "spanish"
    portuguese = "portuguese"
    french = "french"
    turkish = "turkish"
    japanese = "japanese"
    hindi = "hindi"
    arabic = "arabic"
    russian = "russian"
    chinese = "chinese"
    german = "german"


class GenderType(StrEnum):
    """Voice gender of a digital human."""

    male = "male"
    female = "female"


class BackgroundNoiseType(StrEnum):
    """Background noise mixed into a digital human's audio."""

    none = "none"
    office = "office"
    talking = "talking"
    traffic = "traffic"
    cafe = "cafe"
    park = "park"
    tv = "tv"


class VoiceSpeedType(StrEnum):
    """Speaking rate of a digital human."""

    slowest = "slowest"
    slow = "slow"
    normal = "normal"
    fast = "fast"
    fastest = "fastest"


class AudioQualityType(StrEnum):
    """Simulated line quality."""

    high = "high"
    medium = "medium"
    low = "low"
    horrible = "horrible"


class FluencyType(StrEnum):
    """Language fluency of a digital human."""

    beginner = "beginner"
    intermediate = "intermediate"
    native = "native"


class VerbosityType(StrEnum):
    """How much a digital human talks."""

    low = "low"
    medium = "medium"
    high = "high"


class TraitDataType(StrEnum):
    """Type of a trait value."""

    BOOLEAN = "BOOLEAN"
    STRING = "STRING"
    DATE = "DATE"
    NUMBER = "NUMBER"


class MatchType(StrEnum):
    """How a scripted response's phrase is matched."""

    exact = "exact"
    context = "context"


class ResponseType(StrEnum):
    """What a scripted response does."""

    phrase = "phrase"
    silence = "silence"
    dtmf = "dtmf"


class OccurrenceMode(StrEnum):
    """When a scripted response fires."""

    always = "always"
    first_n = "first_n"


# ---------------------------------------------------------------- agents


class _AgentConnection(BaseModel):
    """Fields shared by agent create, update and read (how to reach it)."""

    phone_number: str | None = None
    connection_type: ConnectionType | None = None
    keyterms: list[str] | None = None
    external_agent_id: str | None = None
    folder: str | None = None
    websocket_url: str | None = None
    websocket_username: str | None = None
    websocket_password: str | None = None
    sip_uri: str | None = None
    sip_username: str | None = None
    sip_password: str | None = None
    custom_sip_headers: dict[str, str] | None = None
    livekit_agent_name: str | None = None
    livekit_metadata: dict[str, Any] | None = None
    pipecat_agent_name: str | None = None
    pipecat_agent_configuration: dict[str, Any] | None = None
    pipecat_room_properties: dict[str, Any] | None = None
    http_webhook: str | None = None
    voice_provider: str | None = None
    provider_id: str | None = None
    enable_outbound_call_auto_start: bool | None = None


class AgentRequest(_AgentConnection):
    """Body of ``POST /v1/add-agent``."""

    name: str
    system_prompt: str
    knowledge_base: str
    goals: list[str]
    type: AgentType | None = AgentType.INBOUND
    mode: AgentMode | None = AgentMode.VOICE
    redact_pii: bool | None = False


class AgentResponse(BaseModel):
    """200 body of ``POST /v1/add-agent``."""

    agent_id: int
    status: str = "200"
    http_webhook_key: str | None = None


class AgentUpdateRequest(_AgentConnection):
    """Body of ``POST /v1/update-agent``: every field optional but the id.

    The agent is found by ``agent_id`` or, when that is null, by
    ``external_agent_id``. Omitted or null fields are left unchanged.
    """

    agent_id: str | None
    name: str | None = None
    system_prompt: str | None = None
    knowledge_base: str | None = None
    goals: list[str] | None = None
    type: AgentType | None = None
    mode: AgentMode | None = None
    redact_pii: bool | None = None


class AgentUpdateResponse(BaseModel):
    """200 body of ``POST /v1/update-agent``: the agent after the update."""

    agent: AgentUpdateRequest
    status: str = "200"
    http_webhook_key: str | None = None


class AgentPydantic(BaseModel):
    """200 body of ``GET /v1/agents/{agent_id}``.

    Stored passwords are never echoed: ``websocket_password`` and
    ``sip_password`` read ``"********"`` when set.
    """

    id: str | int | None = None
    name: str
    agent_description: str
    knowledge_base: str
    organization_id: str
    goals: list[str] | None = None
    mode: AgentMode
    type: AgentType | None = None
    connection_type: ConnectionType | None = None
    phone_number: str | None = None
    websocket_url: str | None = None
    redact_pii: bool | None = None
    folder_id: UUID | None = None
    created_at: datetime | None = None
    keyterms: list[str] | None = None
    voice_provider: str | None = None
    provider_id: str | None = None
    websocket_username: str | None = None
    websocket_password: str | None = None
    external_agent_id: str | None = None
    sip_uri: str | None = None
    custom_sip_headers: dict[str, Any] | None = None
    sip_username: str | None = None
    sip_password: str | None = None
    simulation_notifications: dict[str, Any] = Field(default_factory=dict)
    livekit_agent_name: str | None = None
    livekit_metadata: dict[str, Any] | None = None
    pipecat_agent_name: str | None = None
    pipecat_agent_configuration: dict[str, Any] | None = None
    pipecat_room_properties: dict[str, Any] | None = None
    http_webhook: str | None = None
    http_webhook_key: str | None = None
    enable_outbound_call_auto_start: bool | None = None


# ---------------------------------------------------------------- simulations


class DigitalHumansSettings(BaseModel):
    """Defaults for the digital humans of a simulation."""

    default_name: str | None = "random"
    default_caller_number: str | None = "random"
    default_language: str | None = "random"
    default_background_noise: str | None = "none"
    first_message: str | None = "ai_generated"
    num_runs: Annotated[int, Field(ge=1)] | None = 1


class SimulationRequest(BaseModel):
    """Body of ``POST /v1/create-simulation``."""

    agent_id: str
    name: str | None = None
    description: str | None = None
    prompt_id: UUID | None = None
    knowledge_base_id: UUID | None = None
    sequential_calling: bool | None = False
    max_concurrent: Annotated[int, Field(gt=0, le=500)] | None = None
    hangup_on_transfer: bool | None = False
    max_call_duration: int | None = 10
    max_call_duration_units: Literal["minutes", "seconds"] | None = "minutes"
    ringing_timeout: int | None = 300
    digital_humans_settings: DigitalHumansSettings | None = None
    selected_custom_metrics: list[UUID] | None = None
    custom_metrics_failing_threshold: Annotated[int, Field(ge=0, le=100)] | None = None
    custom_metrics_passing_threshold: Annotated[int, Field(ge=0, le=100)] | None = None
    always_on: bool | None = False


class SimulationResponse(BaseModel):
    """200 body of ``POST /v1/create-simulation``."""

    simulation_id: int
    status: str = "200"


class SimulationPydantic(BaseModel):
    """200 body of ``GET /v1/simulation/{simulation_id}``."""

    id: int | None = None
    agent_id: int
    name: str
    created_at: datetime | None = None
    settings: dict[str, Any] | None = None
    type: SimulationType
    max_concurrent: int | None = None
    max_turns: int | None = None
    ringing_timeout: int | None = None
    tags: list[str] | None = None
    description: str | None = None
    pinned: bool | None = None
    always_on: bool | None = None


# ---------------------------------------------------------------- digital humans


class ExpectedToolCall(BaseModel):
    """A tool call the agent should make; extra keys are Roost matchers."""

    model_config = ConfigDict(extra="allow")

    name: str
    parameters: dict[str, Any] | None = None
    output: Any | None = None


class Trait(BaseModel):
    """A named fact about the caller, optionally sent as a SIP header."""

    trait_name: str
    trait_data_type: TraitDataType
    value: Any
    is_sip_header: bool = False


class SpeaksFirstConfig(BaseModel):
    """Who opens the conversation."""

    speaks_first: bool
    mode: Literal["custom", "ai_generated"] | None = None
    message: str | None = None


class ScriptedResponse(BaseModel):
    """A canned reply the caller gives when a phrase is heard."""

    match_type: MatchType
    match_phrase: str
    response_type: ResponseType
    response_value: str | None = None
    occurrence_mode: OccurrenceMode
    occurrence_n: Annotated[int, Field(gt=0)] | None = None
    silence_duration: Annotated[int, Field(gt=0)] | None = None


class SimpleInterruptionConfig(BaseModel):
    """Interruption level."""

    type: Literal["none", "low", "medium", "high"]


class KeywordResponse(BaseModel):
    """Interrupt with ``response`` when ``keyword`` is heard."""

    keyword: str
    response: str
    probability: Annotated[float, Field(ge=0, le=1)] = 1.0


class KeywordsInterruptionConfig(BaseModel):
    """Keyword-triggered interruptions."""

    type: Literal["keywords"]
    keyword_responses: list[KeywordResponse]


class ContextualInterruptionConfig(BaseModel):
    """Interruptions decided from a prompt."""

    type: Literal["contextual"]
    contextual_prompt: str


class _DigitalHumanCommon(BaseModel):
    model_config = ConfigDict(extra="allow")

    tag: str | None = None
    name: str | None = None
    accent: AccentType | None = None
    gender: GenderType | None = None
    outbound_text_number: str | None = None
    expected_tool_calls: list[ExpectedToolCall] | None = None
    allow_end_call_tool: bool | None = True
    hangup_phrases: list[str] | None = None
    hangup_instructions: str | None = None
    role_description: str | None = None
    traits: list[Trait] | None = None
    scripted_responses: list[ScriptedResponse] | None = None
    speaks_first_config: SpeaksFirstConfig | None = None
    original_transcript: str | None = None
    formatted_transcript: list[dict[str, str]] | None = None
    enriched_playback: list[dict[str, Any]] | None = None
    livekit_metadata: dict[str, Any] | None = None


class DigitalHumanRequestData(_DigitalHumanCommon):
    """A simulated caller, as created (Bluejay's ``DigitalHumanRequestData``).

    Keys this model does not know are kept and stored with the digital human:
    that is where Roost's tool-call expectation extensions go (see the
    evaluation engine's documentation).
    """

    intent: str = ""
    success_criteria: str = ""
    language: LanguageType | None = LanguageType.en
    background_noise: BackgroundNoiseType | None = BackgroundNoiseType.none
    voice_speed: VoiceSpeedType | None = VoiceSpeedType.normal
    audio_quality: AudioQualityType | None = AudioQualityType.high
    fluency: FluencyType | None = FluencyType.native
    verbosity: VerbosityType | None = VerbosityType.medium
    phone_number: str
    background_noise_volume: Annotated[float, Field(ge=0, le=1)] | None = 0.8
    endpointing_delay: float | None = 1.5
    creativity: Annotated[float, Field(ge=0, le=2)] | None = 0.7
    allow_silence_tool: bool = False
    silence_tool_instructions: str = "default"
    silence_timeout: Annotated[int, Field(ge=15)] | None = None
    interruptions: (
        SimpleInterruptionConfig | KeywordsInterruptionConfig | ContextualInterruptionConfig | None
    ) = None
    always_on_mode: bool | None = False
    always_on_active: bool | None = None
    num_runs: Annotated[int, Field(ge=1)] | None = 1


class CreateDigitalHumanRequest(BaseModel):
    """Body of ``POST /v1/create-digital-human``."""

    simulation_ids: list[int] | None = None
    simulation_id: int | None = Field(default=None, json_schema_extra={"deprecated": True})
    digital_human: DigitalHumanRequestData


class DigitalHumanResponseData(_DigitalHumanCommon):
    """A digital human as returned (Bluejay's ``DigitalHumanResponseData``)."""

    id: int | None = None
    intent: str
    success_criteria: str
    language: LanguageType | None = None
    background_noise: str | None = None
    voice_speed: str | None = None
    audio_quality: str | None = None
    fluency: str | None = None
    verbosity: str | None = None
    phone_number: str | None = None
    websocket_url: str | None = None
    background_noise_volume: float | None = None
    endpointing_delay: float | None = None
    creativity: float | None = None
    allow_silence_tool: bool | None = False
    silence_tool_instructions: str | None = "default"
    silence_timeout: int | None = None
    created_at: datetime | None = None
    interruptions: dict[str, Any] | None = None


class DigitalHumanResponse(BaseModel):
    """200 body of create-digital-human and get-digital-human."""

    digital_human: DigitalHumanResponseData
    simulation_ids: list[int] | None = None
    simulation_id: int | None = Field(default=None, json_schema_extra={"deprecated": True})
