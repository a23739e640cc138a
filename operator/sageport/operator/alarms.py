"""Alarms for automatic rollback, read from Prometheus.

SageMaker's ``autoRollbackConfiguration.alarms[].alarmName`` names CloudWatch alarms. Here an
alarm is a Prometheus alerting rule whose ``alertname`` is that name, and it is in alarm while
Prometheus reports one of its alerts ``firing`` on ``GET <url>/api/v1/alerts``. A ``pending``
alert (its ``for:`` duration not yet over) is not an alarm yet, as a CloudWatch alarm is not
until its evaluation periods have passed.

:func:`firing_alarms` is the pure part (Prometheus' JSON answer in, firing alarms out);
:func:`read_firing_alarms` is the HTTP call around it. Neither ever answers "nothing fires"
when it could not tell: an unreachable Prometheus or an answer it cannot read raises
:class:`AlarmSourceError`, so a bake is never judged healthy for want of data.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp  # kopf's own HTTP client: in the operator image already, no extra dependency

from sageport.operator.reconcile.lookups import AlarmSource

ALERTS_PATH: Final = "/api/v1/alerts"
ALERT_NAME_LABEL: Final = "alertname"
FIRING: Final = "firing"
DEFAULT_TIMEOUT_SECONDS: Final = 5.0
_QUOTED_BODY_CHARS = 200  # of an unreadable answer, in the error message


@dataclass(frozen=True)
class FiringAlarm:
    """An alarm in alarm: ``active_at`` is when its alert became active (the earliest one when
    the rule has several label sets firing), as Prometheus reports it, in UTC."""

    name: str
    active_at: datetime.datetime

    def describe(self) -> str:
        return f"alarm {self.name} firing since {self.active_at.isoformat()}"


class AlarmSourceError(Exception):
    """Prometheus could not say which alarms fire; the message says why, with its URL."""


class PrometheusUnreachableError(AlarmSourceError):
    """No answer: refused, unresolvable, timed out, or not an HTTP server."""


class PrometheusAnswerError(AlarmSourceError):
    """An answer, but not the alerts: an HTTP error, an API error, or JSON of another shape."""


def alerts_url(prometheus_url: str) -> str:
    """``<url>/api/v1/alerts``; ``prometheus_url`` may carry a path prefix (``--web.route-prefix``).

    Raises :class:`PrometheusUnreachableError` for what is no http(s) URL: no request could reach it.
    """
    try:
        parts = urllib.parse.urlsplit(prometheus_url)
    except ValueError as error:
        raise PrometheusUnreachableError(f"Prometheus URL {prometheus_url!r} is invalid: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PrometheusUnreachableError(
            f"Prometheus URL {prometheus_url!r} is not an http:// or https:// URL with a host"
        )
    return prometheus_url.rstrip("/") + ALERTS_PATH


def _parse_active_at(value: object, name: str) -> datetime.datetime:
    if not isinstance(value, str):
        raise PrometheusAnswerError(f"alert {name}: activeAt is {value!r}, not a timestamp")
    try:
        # Prometheus writes RFC 3339 with nanoseconds; fromisoformat (3.11) keeps microseconds.
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise PrometheusAnswerError(f"alert {name}: activeAt {value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise PrometheusAnswerError(f"alert {name}: activeAt {value!r} has no time zone")
    return parsed.astimezone(datetime.UTC)


def _alerts(answer: object) -> list[object]:
    """The ``data.alerts`` list of an API answer, or the reason it is not one."""
    if not isinstance(answer, Mapping):
        raise PrometheusAnswerError(f"the answer is {type(answer).__name__}, not a JSON object")
    status = answer.get("status")
    if status != "success":
        reason = f"{answer.get('errorType', '')}: {answer.get('error', '')}".strip(": ")
        raise PrometheusAnswerError(f"status {status!r}" + (f" ({reason})" if reason else ""))
    data = answer.get("data")
    alerts = data.get("alerts") if isinstance(data, Mapping) else None
    if not isinstance(alerts, list):
        raise PrometheusAnswerError("no data.alerts list in the answer")
    return alerts


def firing_alarms(answer: object, names: Collection[str]) -> tuple[FiringAlarm, ...]:
    """Which of ``names`` fire in a decoded ``/api/v1/alerts`` answer, earliest first.

    Only the alerts of ``names`` are checked field by field (another rule's odd alert is not
    our concern); the envelope always is. Raises :class:`PrometheusAnswerError`.
    """
    earliest: dict[str, datetime.datetime] = {}
    for alert in _alerts(answer):
        if not isinstance(alert, Mapping) or not isinstance(alert.get("labels"), Mapping):
            raise PrometheusAnswerError(f"an alert without labels: {alert!r}")
        name = alert["labels"].get(ALERT_NAME_LABEL)
        if not isinstance(name, str) or name not in names:
            continue
        state = alert.get("state")
        if not isinstance(state, str):
            raise PrometheusAnswerError(f"alert {name}: state is {state!r}")
        if state != FIRING:
            continue
        active_at = _parse_active_at(alert.get("activeAt"), name)
        earliest[name] = min(active_at, earliest.get(name, active_at))
    alarms = (FiringAlarm(name, active_at) for name, active_at in earliest.items())
    return tuple(sorted(alarms, key=lambda alarm: (alarm.active_at, alarm.name)))


def _quoted(body: str) -> str:
    body = " ".join(body.split())
    return body if len(body) <= _QUOTED_BODY_CHARS else body[:_QUOTED_BODY_CHARS] + "..."


async def read_firing_alarms(
    prometheus_url: str,
    names: Collection[str],
    *,
    session: aiohttp.ClientSession | None = None,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> tuple[FiringAlarm, ...]:
    """Ask Prometheus at ``prometheus_url`` which of ``names`` fire now (see :func:`firing_alarms`).

    ``session`` is reused when given (a reconciler polling during bakes keeps one); else one is
    opened for this call. Raises :class:`PrometheusUnreachableError` or :class:`PrometheusAnswerError`,
    each naming the URL.
    """
    if not names:
        return ()  # nothing to ask: not even an unreachable Prometheus changes the answer
    url = alerts_url(prometheus_url)
    try:
        if session is None:
            async with aiohttp.ClientSession() as own:
                status, body = await _get(own, url, timeout_seconds)
        else:
            status, body = await _get(session, url, timeout_seconds)
    except TimeoutError:
        raise PrometheusUnreachableError(
            f"Prometheus at {url} did not answer within {timeout_seconds:g} s"
        ) from None
    except aiohttp.ClientError as error:  # refused, unresolvable, not HTTP, or a URL it cannot use
        raise PrometheusUnreachableError(
            f"Prometheus at {url} is unreachable: {str(error) or type(error).__name__}"
        ) from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise PrometheusAnswerError(
            f"Prometheus at {url} answered HTTP {status} with no JSON: {_quoted(body)!r}"
        ) from None
    try:
        return firing_alarms(answer, names)
    except PrometheusAnswerError as error:
        raise PrometheusAnswerError(f"Prometheus at {url} answered HTTP {status}: {error}") from None


async def _get(session: aiohttp.ClientSession, url: str, timeout_seconds: float) -> tuple[int, str]:
    """The status and body text of ``GET url``; the API's own errors (4xx/5xx) carry JSON too,
    so the status is left to the parser, which reports the API's message."""
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as response:
        return response.status, await response.text(errors="replace")


def prometheus_alarm_source(prometheus_url: str) -> AlarmSource:
    """What the Endpoint reconciler asks during an update: which alarms fire, and since when."""

    async def firing(names: Sequence[str]) -> dict[str, datetime.datetime]:
        return {alarm.name: alarm.active_at for alarm in await read_firing_alarms(prometheus_url, names)}

    return firing
