"""Serverless demand shared between gateway replicas (pure: no network, no clock of its own).

KEDA holds one gRPC connection to the scaler Service, so it reaches one gateway replica. For a
call held by another replica to wake the variant, every replica sends its per-fleet counts to
its peers (found through the gateway's own EndpointSlice) whenever they change, and again every
``HEARTBEAT_SECONDS`` while it has calls. A receiver keeps the latest report of each
(replica, fleet) and counts it for ``REPORT_TTL_SECONDS`` after it arrived, so a replica that
dies (kill -9, node lost) stops counting within that time.

Nothing is counted twice: a replica's report replaces its previous one (never adds to it),
reports carry a sequence number so a late one never overwrites a newer one, and a replica
ignores reports bearing its own id. The replica id is random per process, so a restarted pod at
the same address starts clean.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# (namespace, endpoint name, config label, variant name): one fleet, as the trigger metadata names it
FleetKey = tuple[str, str, str, str]

HEARTBEAT_SECONDS = 1.0
# Three heartbeats: one lost or late report does not drop a live replica's calls.
REPORT_TTL_SECONDS = 3.0


@dataclass(frozen=True)
class FleetDemand:
    """One replica's calls for one fleet."""

    in_flight: int  # admitted, not answered yet (held ones included)
    held: int  # waiting for a ready pod
    idle_seconds: float  # since its last call ended (0 while calls are in flight; inf: never)


@dataclass(frozen=True)
class Report:
    replica: str
    seq: int
    fleets: Mapping[FleetKey, FleetDemand]


class ReportError(ValueError):
    pass


def encode(report: Report) -> bytes:
    fleets = [
        {"key": list(key), "inFlight": d.in_flight, "held": d.held, "idle": _finite(d.idle_seconds)}
        for key, d in report.fleets.items()
    ]
    return json.dumps({"replica": report.replica, "seq": report.seq, "fleets": fleets}).encode()


def _finite(seconds: float) -> float | None:
    return None if seconds == float("inf") else round(seconds, 3)


def _fleet_key(key: object) -> FleetKey:
    if not (isinstance(key, list) and len(key) == 4 and all(isinstance(k, str) for k in key)):
        raise ReportError(f"a fleet key must be 4 strings (namespace, endpoint, config, variant): {key!r}")
    return (key[0], key[1], key[2], key[3])


def encode_fleet(key: FleetKey) -> bytes:
    """A count request's body: the fleet whose calls in the last minute are asked for."""
    return json.dumps(list(key)).encode()


def decode_fleet(data: bytes) -> FleetKey:
    try:
        return _fleet_key(json.loads(data))
    except ValueError as error:
        raise ReportError(f"not a fleet key ({error})") from None


def decode(data: bytes) -> Report:
    """A peer's report; ReportError naming what is wrong (another version, a stray client)."""
    try:
        document = json.loads(data)
        replica, seq = document["replica"], document["seq"]
        if not isinstance(replica, str) or not replica or not isinstance(seq, int):
            raise ReportError("a demand report needs a non-empty string 'replica' and an integer 'seq'")
        fleets: dict[FleetKey, FleetDemand] = {}
        for entry in document["fleets"]:
            idle = entry.get("idle")
            fleets[_fleet_key(entry["key"])] = FleetDemand(
                in_flight=max(int(entry["inFlight"]), 0),
                held=max(int(entry["held"]), 0),
                idle_seconds=float("inf") if idle is None else max(float(idle), 0.0),
            )
    except ReportError:
        raise
    except (ValueError, KeyError, TypeError) as error:
        raise ReportError(f"not a gateway demand report ({type(error).__name__}: {error})") from None
    return Report(replica, seq, fleets)


@dataclass
class _Entry:
    seq: int
    demand: FleetDemand
    received: float


class PeerDemand:
    """What the other replicas reported, per fleet, as of ``now`` (the caller's monotonic clock)."""

    def __init__(self, me: str, ttl: float = REPORT_TTL_SECONDS) -> None:
        self.me = me
        self.ttl = ttl
        self._entries: dict[tuple[str, FleetKey], _Entry] = {}
        self._last_call: dict[FleetKey, float] = {}  # latest moment a peer's call was alive

    def receive(self, report: Report, now: float) -> list[FleetKey]:
        """Keep ``report``; return the fleets whose held calls (all peers) went from none to some,
        the wake-ups to push to KEDA."""
        if report.replica == self.me:
            return []
        woken = []
        for key, demand in report.fleets.items():
            entry = self._entries.get((report.replica, key))
            if entry is not None and entry.seq >= report.seq:
                continue  # a late report: a newer one is already here
            was_held = self.held(key, now) > 0
            self._entries[(report.replica, key)] = _Entry(report.seq, demand, now)
            alive = now if demand.in_flight > 0 else now - demand.idle_seconds
            self._last_call[key] = max(self._last_call.get(key, float("-inf")), alive)
            if not was_held and demand.held > 0:
                woken.append(key)
        return woken

    def _fresh(self, key: FleetKey, now: float) -> Iterable[FleetDemand]:
        return (
            entry.demand
            for (_, entry_key), entry in self._entries.items()
            if entry_key == key and now - entry.received < self.ttl
        )

    def in_flight(self, key: FleetKey, now: float) -> int:
        return sum(d.in_flight for d in self._fresh(key, now))

    def held(self, key: FleetKey, now: float) -> int:
        return sum(d.held for d in self._fresh(key, now))

    def last_call(self, key: FleetKey, now: float) -> float:
        """When a peer's call for ``key`` last ended (or was last reported alive; a replica that
        died with calls counts them as ended when its last report expires)."""
        last = self._last_call.get(key, float("-inf"))
        for entry in (e for (_, k), e in self._entries.items() if k == key and e.demand.in_flight > 0):
            last = max(last, min(now, entry.received + self.ttl))
        return last

    def expire(self, now: float) -> None:
        """Forget reports older than the TTL (their calls stopped counting already)."""
        for item, entry in list(self._entries.items()):
            if now - entry.received >= self.ttl:
                if entry.demand.in_flight > 0:
                    key = item[1]
                    self._last_call[key] = max(
                        self._last_call.get(key, float("-inf")), entry.received + self.ttl
                    )
                del self._entries[item]
