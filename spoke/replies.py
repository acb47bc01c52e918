"""The clinic's words to the specialist, sent to the hub at once (online only, like the answer
itself). While the specialist waits for more information, whatever the clinic writes is the
answer: this module is the one place that decides it, for the case page and the REST API."""

from __future__ import annotations

from typing import Literal

from shared.errors import Conflict, InvalidInput
from spoke.hub_api import HubApi
from spoke.store import CaseStore

ANSWER: Literal["answer"] = "answer"
MESSAGE: Literal["message"] = "message"


def send_to_specialist(
    store: CaseStore,
    hub_api: HubApi,
    uid: str,
    doctor_name: str,
    text: str,
    doctor: str | None = None,
) -> Literal["answer", "message"]:
    """Send ``text`` signed by the doctor; returns what it was sent as. Raises the domain errors
    (nothing to send, the case not at the hub yet) and ``HubUnavailable`` / ``HubRefused``."""
    words = text.strip()
    if not words:
        raise InvalidInput("Write a message first.", fields={"text": ["Write a message first."]})
    if len(words) > 4000:
        raise InvalidInput("Keep it under 4000 characters.", fields={"text": ["Too long."]})
    case = store.get_case(uid)
    if not case.get("hub_id"):
        raise Conflict("The case has not reached the hub yet: try again shortly.")
    signed = f"{doctor_name}: {words}"
    if "provide_info" in case["clinic_actions"]:
        hub_api.provide_info(case["hub_id"], signed, doctor)
        return ANSWER
    hub_api.post_message(case["hub_id"], signed, doctor)
    return MESSAGE
