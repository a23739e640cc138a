"""Reading alarms out of Prometheus' /api/v1/alerts answer: the pure part of sageport.operator.alarms."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sageport.operator.alarms import (
    FiringAlarm,
    PrometheusAnswerError,
    PrometheusUnreachableError,
    alerts_url,
    firing_alarms,
    read_firing_alarms,
)


def _alert(name: str, state: str = "firing", active_at: str = "2026-03-01T10:00:00Z", **labels: str) -> Any:
    return {
        "labels": {"alertname": name, **labels},
        "annotations": {},
        "state": state,
        "activeAt": active_at,
        "value": "1e+00",
    }


def _answer(*alerts: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"alerts": list(alerts)}}


def test_a_firing_alert_of_an_asked_name_is_an_alarm_since_its_active_time() -> None:
    # The shape and the nanosecond, offset timestamp of Prometheus' documented example.
    answer = _answer(_alert("ErrorRateHigh", active_at="2018-07-04T20:27:12.60602144+02:00"))
    assert firing_alarms(answer, {"ErrorRateHigh"}) == (
        FiringAlarm("ErrorRateHigh", datetime(2018, 7, 4, 18, 27, 12, 606021, tzinfo=UTC)),
    )


def test_pending_alerts_and_other_rules_are_not_alarms() -> None:
    answer = _answer(
        _alert("ErrorRateHigh", state="pending"),
        _alert("SomeoneElses"),
        {"labels": {"alertname": "OddButNotOurs"}},  # no state, no activeAt: not ours to judge
    )
    assert firing_alarms(answer, {"ErrorRateHigh", "LatencyHigh"}) == ()
    assert firing_alarms(_answer(), {"ErrorRateHigh"}) == ()


def test_a_rule_firing_for_several_label_sets_is_one_alarm_since_the_earliest() -> None:
    answer = _answer(
        _alert("ErrorRateHigh", active_at="2026-03-01T10:05:00Z", variant="b"),
        _alert("ErrorRateHigh", active_at="2026-03-01T10:01:00Z", variant="a"),
        _alert("ErrorRateHigh", state="pending", active_at="2026-03-01T09:00:00Z", variant="c"),
    )
    assert firing_alarms(answer, ["ErrorRateHigh"]) == (
        FiringAlarm("ErrorRateHigh", datetime(2026, 3, 1, 10, 1, tzinfo=UTC)),
    )


def test_alarms_come_earliest_first_and_describe_themselves() -> None:
    answer = _answer(
        _alert("LatencyHigh", active_at="2026-03-01T10:02:00Z"),
        _alert("ErrorRateHigh", active_at="2026-03-01T10:01:00+00:00"),
    )
    alarms = firing_alarms(answer, {"ErrorRateHigh", "LatencyHigh"})
    assert [a.name for a in alarms] == ["ErrorRateHigh", "LatencyHigh"]
    assert alarms[0].describe() == "alarm ErrorRateHigh firing since 2026-03-01T10:01:00+00:00"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ([], "the answer is list, not a JSON object"),
        ({"status": "error", "errorType": "bad_data", "error": "boom"}, "status 'error' (bad_data: boom)"),
        ({"status": "error"}, "status 'error'"),
        ({"data": {"alerts": []}}, "status None"),
        ({"status": "success", "data": {"groups": []}}, "no data.alerts list"),
        ({"status": "success", "data": []}, "no data.alerts list"),
        (_answer("ErrorRateHigh"), "an alert without labels: 'ErrorRateHigh'"),
        (_answer({"labels": None}), "an alert without labels"),
        (_answer({**_alert("ErrorRateHigh"), "state": 1}), "alert ErrorRateHigh: state is 1"),
        (_answer(_alert("ErrorRateHigh", active_at="yesterday")), "'yesterday' is not an RFC 3339 time"),
        (_answer(_alert("ErrorRateHigh", active_at="2026-03-01T10:00:00")), "has no time zone"),
        (_answer({**_alert("ErrorRateHigh"), "activeAt": None}), "activeAt is None, not a timestamp"),
    ],
)
def test_an_answer_that_is_not_the_alerts_is_an_error_not_silence(answer: Any, message: str) -> None:
    with pytest.raises(PrometheusAnswerError, match=re.escape(message)):
        firing_alarms(answer, {"ErrorRateHigh"})


_NAMES = st.sampled_from(["A", "B", "C", "D"])
_ALERTS = st.lists(
    st.builds(
        _alert,
        _NAMES,
        st.sampled_from(["firing", "pending", "inactive"]),
        st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    )
)


@given(alerts=_ALERTS, asked=st.sets(_NAMES))
def test_exactly_the_asked_names_with_a_firing_alert_are_reported(alerts: list[Any], asked: set[str]) -> None:
    reported = firing_alarms(_answer(*alerts), asked)
    firing = {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}
    assert [a.name for a in reported] == sorted(
        firing & asked,
        key=lambda name: (
            min(
                datetime.fromisoformat(a["activeAt"])
                for a in alerts
                if a["labels"]["alertname"] == name and a["state"] == "firing"
            ),
            name,
        ),
    )


def test_the_alerts_url_keeps_a_route_prefix() -> None:
    assert alerts_url("http://10.85.0.1:19090") == "http://10.85.0.1:19090/api/v1/alerts"
    assert alerts_url("https://mon.example/prometheus/") == "https://mon.example/prometheus/api/v1/alerts"


@pytest.mark.parametrize("url", ["prometheus:9090", "10.0.0.1:9090", "ftp://mon.example", "", "http://[::1"])
def test_what_is_no_http_url_is_reported_before_any_request(url: str) -> None:
    with pytest.raises(PrometheusUnreachableError, match="Prometheus URL"):
        alerts_url(url)


async def test_no_names_need_no_prometheus() -> None:
    assert await read_firing_alarms("not a url", []) == ()
