"""Console endpoints for lab results: the review queue, releasing, entering a
result, and the per-test hold list. The rules live in ``portal.labs.review``."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute

from rtc_server.api import ApiRoute, Call, json_response, no_content
from rtc_server.portal.labs import review
from rtc_server.portal.labs.shapes import (
    EnteredOut,
    HoldRuleIn,
    HoldRuleOut,
    HoldRulesOut,
    ReleasedOut,
    ReleaseIn,
    ResultIn,
    ReviewItemOut,
)


async def review_queue(call: Call) -> Response:
    """Held results of your patients, waiting for your review (oldest first)."""
    return json_response(await review.review_queue(call.db, call.actor, now=call.deps.clock()))


async def release(call: Call) -> Response:
    """Release a held result to the patient, optionally with a note for them."""
    body = call.body or ReleaseIn()
    return json_response(await review.release_result(
        call.db, call.actor, call.path_int(), note=body.note, settings=call.settings,
        now=call.deps.clock()))


async def enter(call: Call) -> Response:
    """Enter a result for a patient; the hold list decides whether it is released at once."""
    return json_response(await review.enter_result(
        call.db, call.actor, call.path_int(), call.body, settings=call.settings,
        now=call.deps.clock()), 201)


async def list_holds(call: Call) -> Response:
    """Tests whose results wait for a clinician's review (every other test is released at once)."""
    return json_response(await review.list_hold_rules(call.db, call.actor))


async def set_hold(call: Call) -> Response:
    """Hold results of a test (LOINC code) for review, with the reason patients are shown."""
    return json_response(await review.set_hold_rule(call.db, call.actor, call.body, now=call.deps.clock()))


async def remove_hold(call: Call) -> Response:
    """Release results of a test at once again."""
    await review.remove_hold_rule(call.db, call.actor, call.path_str("code", 32))
    return no_content()


_T = "console"

routes: list[BaseRoute] = [
    ApiRoute("/console/results", review_queue, methods=["GET"], response=ReviewItemOut,
             response_list=True, tag=_T),
    ApiRoute("/console/results/{id:int}/release", release, methods=["POST"], body=ReleaseIn,
             response=ReleasedOut, tag=_T),
    ApiRoute("/console/patients/{id:int}/results", enter, methods=["POST"], body=ResultIn,
             response=EnteredOut, status_code=201, tag=_T),
    ApiRoute("/console/result-holds", list_holds, methods=["GET"], response=HoldRulesOut, tag=_T),
    ApiRoute("/console/result-holds", set_hold, methods=["PUT"], body=HoldRuleIn, response=HoldRuleOut,
             tag=_T),
    ApiRoute("/console/result-holds/{code}", remove_hold, methods=["DELETE"], status_code=204, tag=_T),
]
