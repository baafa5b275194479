"""The pure pieces behind the visit socket, with plain values: the waiting room's
order and estimates, admission decisions, the call room's relay decisions and seat
replacement, the polite side, TURN REST credentials and the SDP/candidate checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from rtc_server.rooms.lobby import (
    AdmitDecision,
    CallRoom,
    InVisit,
    Member,
    Refusal,
    Waiting,
    decide_admit,
    estimate,
    may_join_call,
    polite,
)
from rtc_server.rooms.turn import IceConfig, ice_servers, turn_credentials
from rtc_server.signaling.frames import client_frames

T0 = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_an_early_arrival_waits_behind_an_earlier_appointment_and_walk_ins_by_arrival() -> None:
    early_for_three = Waiting(1, 10, checked_in_at=T0, scheduled_start=T0 + 60 * MIN)
    two_oclock = Waiting(2, 11, checked_in_at=T0 + 5 * MIN, scheduled_start=T0 + 30 * MIN)
    walk_in = Waiting(3, 12, checked_in_at=T0 + 1 * MIN)
    places = estimate([early_for_three, two_oclock, walk_in], [], T0 + 10 * MIN)
    assert [(p.participant_id, p.position) for p in places] == [(3, 1), (2, 2), (1, 3)]
    assert [p.estimated_wait_minutes for p in places] == [0, 15, 30]


def test_the_estimate_counts_what_is_left_of_the_visit_under_way_and_at_least_a_minute() -> None:
    waiting = [Waiting(1, 10, checked_in_at=T0)]
    under_way = [InVisit(9, started_at=T0, expected=20 * MIN)]
    assert estimate(waiting, under_way, T0 + 5 * MIN)[0].estimated_wait_minutes == 15
    assert estimate(waiting, under_way, T0 + 50 * MIN)[0].estimated_wait_minutes == 1  # running late


@pytest.mark.parametrize(("ended", "state", "decision"), [
    (False, "waiting", AdmitDecision.admit),
    (False, "admitted", AdmitDecision.already_admitted),
    (False, "left", AdmitDecision.not_waiting),
    (False, None, AdmitDecision.not_waiting),
    (True, "waiting", AdmitDecision.visit_ended),
])
def test_only_a_waiting_participant_of_an_open_visit_is_admitted(ended, state, decision) -> None:
    assert decide_admit(visit_ended=ended, state=state) == decision


def test_nobody_joins_the_call_without_admission() -> None:
    assert may_join_call(visit_ended=False, state="admitted")
    assert not may_join_call(visit_ended=False, state="waiting")
    assert not may_join_call(visit_ended=True, state="admitted")


def room() -> CallRoom:
    return CallRoom(visit_id=5, members={1: Member(1, 100, "provider", "P" * 16),
                                         2: Member(2, 200, "patient")})


def test_frames_go_only_between_peers_in_the_call() -> None:
    r = room()
    assert r.relay("P" * 16, "Q" * 16) == Refusal.unknown_peer  # the patient has not joined
    assert r.join(2, "Q" * 16) is None
    assert r.relay("P" * 16, "Q" * 16) is None and r.relay("Q" * 16, "P" * 16) is None
    assert r.relay("X" * 16, "P" * 16) == Refusal.not_joined
    assert r.relay("P" * 16, "P" * 16) == Refusal.self_target


def test_a_new_join_replaces_the_old_peer_and_a_stale_leave_changes_nothing() -> None:
    r = room()
    r.join(2, "A" * 16)
    assert r.join(2, "B" * 16) == "A" * 16
    assert r.relay("A" * 16, "P" * 16) == Refusal.not_joined
    assert r.leave(2, "A" * 16) is False
    assert r.peers == {"P" * 16: 1, "B" * 16: 2}
    assert r.leave(2, "B" * 16) is True and r.peers == {"P" * 16: 1}


def test_revoking_or_ending_disconnects_peers() -> None:
    r = room()
    r.join(2, "B" * 16)
    assert r.revoke(2) == "B" * 16 and r.relay("P" * 16, "B" * 16) == Refusal.unknown_peer
    assert r.end() == ["P" * 16]
    assert r.relay("P" * 16, "B" * 16) == Refusal.visit_ended


def test_exactly_one_side_of_a_pair_is_polite() -> None:
    a, b = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
    assert polite(a, b) != polite(b, a)


def test_turn_rest_credentials_are_what_coturn_recomputes() -> None:
    username, credential = turn_credentials("s3cret", "u9", 1_900_000_000)
    assert username == "1900000000:u9"
    digest = hmac.new(b"s3cret", b"1900000000:u9", hashlib.sha1).digest()
    assert credential == base64.b64encode(digest).decode()
    # No TURN without a secret; STUN alone needs none.
    assert ice_servers(IceConfig(turn_urls=("turn:x:3478",)), user="u9", now=0) == []
    assert ice_servers(IceConfig(stun_urls=("stun:x:3478",)), user="u9", now=0) == [
        {"urls": ["stun:x:3478"]}]
    assert IceConfig.from_settings(object()).policy == "all"


@pytest.mark.parametrize("sdp", [
    "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    "v=0\nm=audio 9 RTP/AVP 0\n",
])
def test_well_formed_sdp_is_accepted(sdp) -> None:
    assert client_frames.validate_python({"type": "offer", "to": "A" * 16, "sdp": sdp}).sdp == sdp


@pytest.mark.parametrize("sdp", [
    "", "v=1\r\nm=audio 9 RTP/AVP 0\r\n", "v=0\r\nm=audio\r\nX=y\r\n", "v=0\r\nm=audio 9\r\na=\u00e9\r\n",
    "v=0\r\na=x\r\n", "v=0\r\nm=audio\x00\r\n",
])
def test_malformed_sdp_is_refused(sdp) -> None:
    with pytest.raises(ValidationError):
        client_frames.validate_python({"type": "offer", "to": "A" * 16, "sdp": sdp})
