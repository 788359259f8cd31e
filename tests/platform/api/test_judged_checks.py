"""Model-judged checks through the API, on SQLite and PostgreSQL.

Two digital humans: one with a ``judge`` matcher, one with ``judge_fallback``.
The agent's enrichment arrives by ``POST /v1/update-simulation-result``, the
call ends, the lifecycle evaluates, and ``POST /v1/re-evaluate-simulation-
result/{id}`` evaluates again. The judge is either the OpenAI-compatible one,
pointed at a chat-completions server on 127.0.0.1 (a real HTTP round trip per
question), or none (``ROOST_JUDGE=off``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from roost.platform.results import results_needing_judge
from roost.platform.storage import Database
from tests.platform.conftest import AppFactory, Org, client_for
from tests.platform.judges.chat_server import FakeChatServer, verdict
from tests.platform.seed import check, seed_run

JUDGED = [
    {
        "name": "book_table",
        "parameters": {"notes": "window seat"},
        "match": {"notes": {"judge": "asks for a seat by the window"}},
    }
]
FALLBACK = [{"name": "book_table", "parameters": {"date": "2026-01-02"}, "judge_fallback": True}]
CALLS = {
    "judged": {"notes": "somewhere by the window please"},
    "fallback": {"date": "January 2nd, 2026"},
}


def model(data: dict[str, Any]) -> str:
    """The fake model: passes the two values the agent sends, and says why."""
    if "window" in data["actual"]:
        return verdict(True, 0.95, "asks for the window")
    if data["actual"] == "January 2nd, 2026" and data.get("expected") == "2026-01-02":
        return verdict(True, 0.9, "the same day written out")
    return verdict(False, 0.1, "not what was asked")


async def _result(http: httpx.AsyncClient, result_id: str) -> dict[str, Any]:
    data = check(await http.get(f"/v1/retrieve-simulation-result/{result_id}"))
    result: dict[str, Any] = data["simulation_result"]
    return result


async def _evaluated(app: Any, http: httpx.AsyncClient, result_id: str) -> dict[str, Any]:
    """Run the lifecycle until the result is evaluated (the app's own worker
    may hold the row at the same moment, so one pass is not enough)."""
    deadline = time.monotonic() + 60
    while True:
        await app.state.lifecycle.run_once()
        result = await _result(http, result_id)
        done = result["status"] == "COMPLETED" and not result["roost"]["evaluation_stale"]
        if done or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


async def _run_call(http: httpx.AsyncClient, spec: list[dict[str, Any]], kind: str) -> str:
    seeded = await seed_run(http, expected_tool_calls=spec)
    rid = seeded.result_ids[0]
    tool = {"name": "book_table", "start_offset_ms": 1200, "parameters": CALLS[kind]}
    check(
        await http.post(
            "/v1/update-simulation-result",
            json={"simulation_result_id": rid, "tool_calls": [tool]},
        )
    )
    check(await http.post(f"/v1/roost/simulation-results/{rid}/call-started", json={}))
    check(await http.post(f"/v1/roost/simulation-results/{rid}/call-ended", json={}))
    return rid


async def _reevaluate(http: httpx.AsyncClient, result_id: str) -> dict[str, Any]:
    response = check(await http.post(f"/v1/re-evaluate-simulation-result/{result_id}"))
    assert response["status"] == "success"
    return await _result(http, result_id)


def _reason(result: dict[str, Any]) -> str:
    [verdict_] = result["roost"]["evaluation"]["tool_calls"]["verdicts"]
    reason: str = verdict_["reason"]
    return reason


async def test_an_openai_compatible_judge_decides_and_reading_never_asks_again(
    make_app: AppFactory, org: Org
) -> None:
    async with (
        FakeChatServer(model, failing=True) as server,
        make_app(judge="openai", judge_url=server.url, judge_model="local-judge") as app,
        client_for(app, org.headers) as http,
    ):
        assert app.state.judging.name == "openai:local-judge"
        judged = await _run_call(http, JUDGED, "judged")
        fallback = await _run_call(http, FALLBACK, "fallback")

        # The model server is down while the lifecycle evaluates: the checks
        # fail and say why; nothing passes silently.
        for rid in (judged, fallback):
            first = await _evaluated(app, http, rid)
            assert first["roost"]["evaluation"]["passed"] is False
            assert (
                "not judged (openai:local-judge): the judge endpoint answered HTTP 500"
                in _reason(first)
            )
        asked_while_down = server.chat_requests
        assert asked_while_down >= 2

        # Back up: failures were not cached, so re-evaluating asks again.
        server.failing = False
        judged_result = await _reevaluate(http, judged)
        fallback_result = await _reevaluate(http, fallback)
        asked = server.chat_requests
        assert asked == asked_while_down + 2

        # Reading results (and re-evaluating again, from the cache) never
        # calls the model.
        for rid in (judged, fallback):
            await _result(http, rid)
            check(await http.get(f"/v1/roost/simulation-results/{rid}/enrichment"))
        cached = (await _reevaluate(http, judged))["roost"]["evaluation"]
        assert cached["tool_calls"] == judged_result["roost"]["evaluation"]["tool_calls"]
        assert server.chat_requests == asked

    evaluation = judged_result["roost"]["evaluation"]
    assert evaluation["passed"] is True
    assert evaluation["judge"] == "openai:local-judge"
    assert evaluation["judgements_pending"] == 0
    assert _reason(judged_result) == (
        "book_table (expected #0): called at 1200 ms, 1/1 checks passed; parameters.notes: "
        "passed, judged by openai:local-judge (score 0.95): asks for the window"
    )
    [judgement] = evaluation["tool_calls"]["judgements"]
    assert judgement["kind"] == "judge"
    assert judgement["criterion"] == "asks for a seat by the window"
    assert judgement["context"] == "book_table parameters.notes"
    assert judgement["answer"] == {
        "passed": True,
        "score": 0.95,
        "reason": "asks for the window",
        "judge": "openai:local-judge",
    }
    # The response's Bluejay groups pair the call as the stored evaluation did.
    [group] = judged_result["tool_calls"]
    assert group["name"] == "book_table"
    assert [item["parameters"] for item in group["expected"]] == [{"notes": "window seat"}]
    assert [item["parameters"] for item in group["actual"]] == [CALLS["judged"]]

    fallback_evaluation = fallback_result["roost"]["evaluation"]
    assert fallback_evaluation["passed"] is True
    assert _reason(fallback_result).endswith(
        'parameters.date: deterministic check failed (expected "2026-01-02", got '
        '"January 2nd, 2026"); passed by the judge fallback, judged by openai:local-judge '
        "(score 0.90): the same day written out"
    )
    [asked_fallback] = fallback_evaluation["tool_calls"]["judgements"]
    assert asked_fallback["kind"] == "fallback"

    # What the model was shown: the untrusted value as JSON inside <data>.
    shown = [item.data for item in server.received]
    assert {
        "criterion": "asks for a seat by the window",
        "where": "book_table parameters.notes",
        "expected": "window seat",
        "actual": "somewhere by the window please",
    } in shown


async def test_without_a_judge_judged_checks_fail_with_the_reason(
    make_app: AppFactory, org: Org
) -> None:
    async with (
        make_app(judge="off") as app,
        client_for(app, org.headers) as http,
    ):
        assert app.state.judging.driver is None
        judged = await _run_call(http, JUDGED, "judged")
        fallback = await _run_call(http, FALLBACK, "fallback")
        settled = [await _evaluated(app, http, rid) for rid in (judged, fallback)]
        again = [await _reevaluate(http, rid) for rid in (judged, fallback)]

    for result in (*settled, *again):
        evaluation = result["roost"]["evaluation"]
        assert evaluation["passed"] is False
        assert evaluation["judge"] is None
        assert evaluation["judgements_pending"] == 1
        [judgement] = evaluation["tool_calls"]["judgements"]
        assert judgement["answer"] is None
        assert not result["roost"]["evaluation_stale"]
    assert _reason(again[0]).endswith(
        "parameters.notes: not judged: no judge is configured (ROOST_JUDGE=off)"
    )
    assert _reason(again[1]).endswith(
        'parameters.date: expected "2026-01-02", got "January 2nd, 2026"; judge fallback '
        "not judged: no judge is configured (ROOST_JUDGE=off)"
    )


async def test_reevaluating_a_call_that_has_not_ended_asks_no_model(
    make_app: AppFactory, org: Org
) -> None:
    async with (
        FakeChatServer(model) as server,
        make_app(judge="openai", judge_url=server.url, judge_model="local-judge") as app,
        client_for(app, org.headers) as http,
    ):
        rid = (await seed_run(http, expected_tool_calls=JUDGED)).result_ids[0]
        tool = {"name": "book_table", "start_offset_ms": 1200, "parameters": CALLS["judged"]}
        check(
            await http.post(
                "/v1/update-simulation-result",
                json={"simulation_result_id": rid, "tool_calls": [tool]},
            )
        )
        check(await http.post(f"/v1/roost/simulation-results/{rid}/call-started", json={}))
        response = await http.post(f"/v1/re-evaluate-simulation-result/{rid}")
        await app.state.lifecycle.run_once()
    assert response.status_code == 409
    assert server.chat_requests == 0


async def test_only_results_whose_spec_has_judged_checks_are_loaded_for_the_judge(
    make_app: AppFactory, org: Org, db: Database
) -> None:
    async with make_app(judge="off") as app, client_for(app, org.headers) as http:
        judged = await _run_call(http, JUDGED, "judged")
        plain_spec = [{"name": "book_table", "parameters": {"notes": "window seat"}}]
        plain = await _run_call(http, plain_spec, "judged")
        # A judged spec whose enrichment never came: nothing for a judge to see.
        waiting = (await seed_run(http, expected_tool_calls=JUDGED)).result_ids[0]
        ids = [int(judged), int(plain), int(waiting)]
        async with db.read() as session:
            assert await results_needing_judge(session, org.id, ids) == [int(judged)]
            # Another organisation's id never comes back.
            assert await results_needing_judge(session, org.id + 1000, ids) == []
