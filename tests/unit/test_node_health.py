"""The operator's judgement of node health (joblet_operator.nodes): Ready from the heartbeat's
age against the grace, how heartbeats are credited despite agent clock skew, and when the
Ready condition is worth a write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from joblet_operator.nodes import (
    NodeHealthSettings,
    Readiness,
    Sighting,
    configure,
    latest,
    node_readiness,
    parse_time,
    ready_status_patch,
    settings_from_env,
    sight,
)

NOW = datetime(2026, 11, 27, 21, 0, 0, tzinfo=UTC)


def _ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_fresh_heartbeat_is_ready() -> None:
    ready, reason, message = node_readiness(_ago(5), NOW, 40)
    assert (ready, reason) == (True, "AgentReady")
    assert "5s ago" in message


def test_exactly_at_grace_is_still_ready() -> None:
    assert node_readiness(_ago(40), NOW, 40).ready
    assert not node_readiness(_ago(40.001), NOW, 40).ready
    assert node_readiness(_ago(40.5), NOW, 40) == Readiness(
        False, "HeartbeatLapsed", "no heartbeat for 40.5s (grace 40s)"
    )


def test_lapsed_heartbeat_says_how_long() -> None:
    ready, reason, message = node_readiness(_ago(125), NOW, 40)
    assert (ready, reason) == (False, "HeartbeatLapsed")
    assert "125.0s" in message and "grace 40s" in message


def test_missing_renew_time_is_not_ready() -> None:
    ready, reason, message = node_readiness(None, NOW, 40)
    assert (ready, reason) == (False, "HeartbeatLapsed")
    assert "no heartbeat" in message


def test_renew_time_in_the_future_is_ready_and_named_skew() -> None:
    ready, reason, message = node_readiness(NOW + timedelta(seconds=90), NOW, 40)
    assert (ready, reason) == (True, "AgentReady")
    assert "clock skew" in message


def test_parse_time_forms() -> None:
    assert parse_time("2026-11-27T21:00:00.500000Z") == NOW + timedelta(seconds=0.5)
    assert parse_time("2026-11-27T21:00:00Z") == NOW
    assert parse_time("2026-11-27T21:00:00") == NOW  # no zone: UTC
    assert parse_time(None) is None
    assert parse_time("") is None
    assert parse_time("yesterday") is None


def test_first_sight_trusts_the_lease_timestamp() -> None:
    s = sight(None, "2026-11-27T20:59:50Z", NOW)
    assert s.credited == _ago(10)
    # an operator starting next to a long-dead node must not call it alive
    assert not node_readiness(sight(None, "2026-11-27T20:00:00Z", NOW).credited, NOW, 40).ready


def test_first_sight_clamps_a_future_timestamp_to_now() -> None:
    s = sight(None, "2026-11-27T21:10:00Z", NOW)
    assert s.credited == NOW


def test_first_sight_without_renew_time() -> None:
    assert sight(None, None, NOW) == Sighting("", None)
    assert not node_readiness(sight(None, None, NOW).credited, NOW, 40).ready


def test_a_changed_renewal_is_credited_on_the_operator_clock() -> None:
    # agent clock 5 minutes slow: every renewal looks old, but it keeps changing → alive
    first = sight(None, "2026-11-27T20:55:00Z", NOW)
    assert not node_readiness(first.credited, NOW, 40).ready
    later = NOW + timedelta(seconds=10)
    second = sight(first, "2026-11-27T20:55:10Z", later)
    assert second.credited == later
    assert node_readiness(second.credited, later, 40).ready


def test_a_frozen_future_renewal_still_lapses() -> None:
    # agent clock 1 hour fast, then the agent dies: the timestamp alone would keep it alive
    first = sight(None, "2026-11-27T21:59:00Z", NOW)
    second = sight(first, "2026-11-27T22:00:00Z", NOW + timedelta(seconds=10))
    much_later = NOW + timedelta(seconds=60)
    same = sight(second, "2026-11-27T22:00:00Z", much_later)
    assert same is second
    assert not node_readiness(same.credited, much_later, 40).ready


def test_latest_ignores_unknown() -> None:
    assert latest([None, _ago(3), _ago(1)]) == _ago(1)
    assert latest([None]) is None
    assert latest([]) is None


def test_patch_on_transition_to_not_ready() -> None:
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AgentReady",
                "lastTransitionTime": "2026-11-27T20:00:00Z",
            }
        ]
    }
    r = node_readiness(_ago(50), NOW, 40)
    patch = ready_status_patch(status, r, NOW, 4, _ago(50))
    assert patch is not None
    (cond,) = patch["conditions"]
    assert cond == {
        "type": "Ready",
        "status": "False",
        "reason": "HeartbeatLapsed",
        "message": r.message,
        "lastTransitionTime": "2026-11-27T21:00:00Z",
        "observedGeneration": 4,
    }
    assert patch["lastHeartbeatTime"] == "2026-11-27T20:59:10Z"


def test_no_patch_when_only_the_age_changed() -> None:
    status = {
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "HeartbeatLapsed", "message": "50s"}
        ]
    }
    assert ready_status_patch(status, node_readiness(_ago(90), NOW, 40), NOW, 1, None) is None


def test_patch_on_a_node_without_status_and_other_conditions_kept() -> None:
    r = node_readiness(_ago(1), NOW, 40)
    patch = ready_status_patch({}, r, NOW, 1, _ago(1))
    assert patch is not None and patch["conditions"][0]["status"] == "True"
    other = {"type": "Other", "status": "True"}
    status = {"conditions": [other, {"type": "Ready", "status": "Unknown"}]}
    patch = ready_status_patch(status, r, NOW, 1, None)
    assert patch is not None
    assert patch["conditions"][0] == other
    assert "lastHeartbeatTime" not in patch


def test_reason_change_with_same_status_keeps_transition_time() -> None:
    status = {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "Something",
                "lastTransitionTime": "2026-11-27T20:00:00Z",
            }
        ]
    }
    patch = ready_status_patch(status, node_readiness(None, NOW, 40), NOW, 1, None)
    assert patch is not None
    assert patch["conditions"][0]["lastTransitionTime"] == "2026-11-27T20:00:00Z"


def test_settings_from_env_and_interval() -> None:
    assert settings_from_env({}).grace == 40.0
    assert settings_from_env({}).check_interval == 1.0
    s = settings_from_env({"JOBLET_NODE_GRACE": "3"})
    assert (s.grace, s.check_interval) == (3.0, 0.75)
    assert NodeHealthSettings(grace=0.5).check_interval == 0.25
    with pytest.raises(ValueError):
        settings_from_env({"JOBLET_NODE_GRACE": "0"})
    with pytest.raises(ValueError):
        configure(-1)
