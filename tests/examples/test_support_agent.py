"""The README's instrumented agent records what it did, redacted and in order."""

from __future__ import annotations

import doctest

from roost.examples import support_agent
from roost.schema import UpdateSimulationRequest
from tests.openapi import UPDATE_REQUEST, assert_valid


class Keep:
    def __init__(self) -> None:
        self.requests: list[UpdateSimulationRequest] = []

    def submit(self, request: UpdateSimulationRequest) -> str:
        self.requests.append(request)
        return str(len(self.requests))


def test_doctests() -> None:
    failures, tried = doctest.testmod(support_agent)
    assert tried > 0 and failures == 0


async def test_a_call_records_tools_events_and_transcript() -> None:
    sink = Keep()
    status = await support_agent.handle_call({"x-simulation-result-id": " 42 "}, sink=sink)
    assert status == "booked"
    (request,) = sink.requests
    assert request.simulation_result_id == "42"
    failed, booked = request.tool_calls[2], request.tool_calls[3]
    assert (failed.status, failed.error_type) == (
        "error",
        "roost.examples.support_agent.SlotTaken",
    )
    assert failed.error_message == "2026-12-01 09:00 is taken"
    assert booked.status == "ok" and booked.output["reference"] == "BK-7731"
    assert booked.start_offset_ms >= failed.start_offset_ms
    assert [event.title for event in request.events] == ["identity_verified", "call_wrap_up"]
    assert "4111111111114242" not in repr(request)
    import json

    from roost.schema import encode_request

    assert_valid(UPDATE_REQUEST, json.loads(encode_request(request)))


async def test_a_call_without_an_id_submits_nothing() -> None:
    sink = Keep()
    assert await support_agent.handle_call({}, sink=sink) == "booked"
    assert sink.requests == []
