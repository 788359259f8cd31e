"""A bank-support agent instrumented with the Roost SDK: the README's example.

The "conversation" is scripted, so this file shows the SDK without a speech
pipeline: the caller's turns arrive as text and the agent answers with text. A
real agent runs the same lines around its LLM and tools. What matters is what
the SDK sees:

- ``@roost.tool`` on each tool: name, docstring, bound arguments, output,
  timing and any exception are recorded while a call is active;
- ``roost.CallRecorder`` around the call, entered when the call is answered,
  with the id taken from the call's carrier (here a dict of SIP headers);
- events and the agent's own transcript;
- the card number is redacted before anything leaves memory, by the default
  :class:`~roost.redaction.Redactor`.

When the ``async with`` block exits, the recorder assembles the payload and
hands it to delivery, which makes it durable in the outbox before the agent
goes on; a background thread posts it to ``/v1/update-simulation-result``.

Example:
    >>> import asyncio
    >>> sent = []
    >>> class Keep:
    ...     def submit(self, request):
    ...         sent.append(request)
    ...         return "1"
    >>> headers = {"X-Simulation-Result-Id": "720488"}
    >>> asyncio.run(handle_call(headers, sink=Keep()))
    'booked'
    >>> [call.name for call in sent[0].tool_calls]
    ['lookup_account', 'verify_identity', 'book_appointment', 'book_appointment']
    >>> sent[0].tool_calls[1].parameters["card_number"]
    '[REDACTED]'
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import roost
from roost.recorder import EnrichmentSink

__all__ = ["SlotTaken", "book_appointment", "handle_call", "lookup_account", "verify_identity"]

_ACCOUNTS = {"+15550100": {"account_id": "AC-1042", "name": "Dana Reyes", "card_last4": "4242"}}
_TAKEN = {("2026-12-01", "09:00")}


class SlotTaken(Exception):
    """The branch has no free advisor at that time."""


@roost.tool
async def lookup_account(phone: str) -> dict[str, str]:
    """Find the customer's account by the number they call from."""
    await asyncio.sleep(0.004)  # a database round trip
    account = _ACCOUNTS.get(phone)
    if account is None:
        raise LookupError(f"no account for {phone}")
    return {"account_id": account["account_id"], "name": account["name"]}


@roost.tool
def verify_identity(account_id: str, card_number: str, date_of_birth: str) -> bool:
    """Check the caller's card number and date of birth."""
    return card_number.endswith(_ACCOUNTS["+15550100"]["card_last4"]) and bool(date_of_birth)


@roost.tool
async def book_appointment(account_id: str, day: str, time: str) -> dict[str, Any]:
    """Book a meeting with an advisor at a branch."""
    await asyncio.sleep(0.006)
    if (day, time) in _TAKEN:
        raise SlotTaken(f"{day} {time} is taken")
    return {"status": "booked", "day": day, "time": time, "reference": "BK-7731"}


async def handle_call(headers: Mapping[str, str], *, sink: EnrichmentSink | None = None) -> str:
    """Serve one scripted call; return the booking status.

    Args:
        headers: The call's SIP (or WebSocket upgrade) headers.
        sink: Where the finished payload goes; default: the durable outbox of
            ``roost.delivery.default_delivery()``.
    """
    result_id = roost.extract_simulation_result_id(headers)
    async with roost.CallRecorder(result_id, sink=sink, tags=["example"]) as call:
        call.set_metadata(agent_version="2026.11", model="scripted")
        say = _Transcript(call)
        say("AGENT", "Thank you for calling Northwind Bank. How can I help?")
        say("USER", "I'd like to meet an advisor about a mortgage.")
        account = await lookup_account("+15550100")
        say("AGENT", f"Hello {account['name']}. Could you confirm your card number?")
        say("USER", "4111 1111 1111 4242, born 12 March 1984.")
        if verify_identity(account["account_id"], "4111111111114242", "1984-03-12"):
            call.event("identity_verified", description="card and date of birth match")
        status = "not booked"
        for time in ("09:00", "10:30"):
            try:
                booking = await book_appointment(account["account_id"], "2026-12-01", time)
            except SlotTaken:
                say("AGENT", f"{time} is taken; let me try the next slot.")
                continue
            status = str(booking["status"])
            say(
                "AGENT", f"You're booked on 1 December at {time}, reference {booking['reference']}."
            )
            break
        call.event("call_wrap_up", metadata={"outcome": status})
    return status


class _Transcript:
    """Appends the agent's transcript with offsets as the lines are spoken."""

    def __init__(self, call: roost.CallRecorder) -> None:
        self._call = call

    def __call__(self, speaker: str, utterance: str) -> None:
        start = self._call.now_ms()
        # A spoken line takes roughly 60 ms per word at a natural pace.
        end = start + 60 * len(utterance.split())
        self._call.transcript(speaker, utterance, start_ms=start, end_ms=end)
