"""Serverless demand shared between gateway replicas: the reports, their expiry, and what the
activator tells KEDA from them (no network: reports are handed over directly)."""

from __future__ import annotations

import asyncio

import pytest

from sageport import contract
from sageport.gateway import peers
from sageport.gateway.activator import Activator
from sageport.gateway.kubestate import peer_addresses
from sageport.gateway.peers import FleetDemand, PeerDemand, Report
from sageport.net.awserrors import ApiError

KEY = ("ns", "ep", "cfg", "AllTraffic")
OTHER = ("ns", "other", "cfg", "AllTraffic")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def report(replica: str, seq: int, in_flight: int, held: int = 0, idle: float = 0.0) -> Report:
    return Report(replica, seq, {KEY: FleetDemand(in_flight, held, idle)})


def test_reports_round_trip_and_bad_ones_name_what_is_wrong() -> None:
    sent = Report("a1", 7, {KEY: FleetDemand(3, 2, 0.0), OTHER: FleetDemand(0, 0, float("inf"))})
    assert peers.decode(peers.encode(sent)) == sent
    with pytest.raises(peers.ReportError, match="not a gateway demand report"):
        peers.decode(b"{}")
    with pytest.raises(peers.ReportError, match="4 strings"):
        peers.decode(b'{"replica": "a", "seq": 1, "fleets": [{"key": ["x"], "inFlight": 1, "held": 0}]}')
    with pytest.raises(peers.ReportError, match="'replica'"):
        peers.decode(b'{"replica": "", "seq": 1, "fleets": []}')


def test_a_report_replaces_the_previous_one_of_its_replica_never_adds() -> None:
    demand = PeerDemand("me")
    demand.receive(report("a", 1, 2), now=0)
    demand.receive(report("a", 2, 3), now=0.1)
    demand.receive(report("b", 1, 1), now=0.1)
    assert demand.in_flight(KEY, now=0.2) == 4  # a's 3 (not 2 + 3) and b's 1
    demand.receive(report("a", 1, 9), now=0.3)  # late: older than what is here
    assert demand.in_flight(KEY, now=0.3) == 4
    demand.receive(report("me", 5, 10), now=0.3)  # its own, looped back through the Service
    assert demand.in_flight(KEY, now=0.3) == 4


def test_a_dead_replicas_demand_goes_away_after_the_ttl() -> None:
    demand = PeerDemand("me", ttl=3.0)
    demand.receive(report("a", 1, 5, held=5), now=10.0)
    assert (demand.in_flight(KEY, 12.9), demand.held(KEY, 12.9)) == (5, 5)
    assert (demand.in_flight(KEY, 13.0), demand.held(KEY, 13.0)) == (0, 0)
    # Its calls count as ended when its last report expired, for KEDA's active window.
    assert demand.last_call(KEY, 20.0) == 13.0
    demand.expire(20.0)
    assert demand.last_call(KEY, 20.0) == 13.0


def test_receive_names_a_fleet_once_when_peers_start_holding_calls() -> None:
    demand = PeerDemand("me")
    assert demand.receive(report("a", 1, 1, held=1), now=0) == [KEY]
    assert demand.receive(report("b", 1, 1, held=1), now=0) == []  # already held: same wake-up
    assert demand.receive(report("a", 2, 1, held=0), now=1) == []
    demand.receive(report("b", 2, 1, held=0), now=1)
    assert demand.receive(report("a", 3, 1, held=1), now=2) == [KEY]  # a new wake-up


def test_idle_peers_report_when_their_last_call_ended() -> None:
    demand = PeerDemand("me")
    demand.receive(report("a", 1, 0, idle=4.0), now=50.0)
    assert demand.last_call(KEY, 50.0) == 46.0


def test_peer_addresses_come_from_the_scaler_port_of_the_gateways_slice() -> None:
    slice_obj = {
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}, {"name": contract.SCALER_PORT_NAME, "port": 9091}],
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": False}},  # starting or draining: kept
            {"addresses": ["10.0.0.3"]},
        ],
    }
    assert peer_addresses(slice_obj, own_ip="10.0.0.3") == ("10.0.0.1:9091", "10.0.0.2:9091")
    assert peer_addresses({**slice_obj, "ports": [{"name": "http", "port": 8080}]}, None) == ()


def _pushes(activator: Activator, key: tuple[str, str, str, str]) -> tuple[list[bool], asyncio.Task[None]]:
    pushed: list[bool] = []

    async def listen() -> None:
        async for active in activator.stream(key):
            pushed.append(active)

    return pushed, asyncio.ensure_future(listen())


def test_a_call_held_by_a_peer_wakes_the_fleet_through_the_stream_here() -> None:
    async def scenario() -> None:
        clock = Clock()
        activator = Activator(clock, replica="keda-side")
        pushed, task = _pushes(activator, KEY)
        await asyncio.sleep(0)
        activator.receive(report("holder", 1, 1, held=1))
        activator.receive(report("holder", 2, 2, held=2))  # a second held call: same wake-up
        await asyncio.sleep(0)
        assert pushed == [True]
        assert activator.wakeups == 1
        assert activator.demand(KEY) == 2  # GetMetrics: the peer's calls, counted once
        assert activator.is_active(KEY, window=10)
        clock.now += peers.REPORT_TTL_SECONDS  # the holder died: no report since
        assert activator.demand(KEY) == 0
        assert activator.is_active(KEY, window=10)  # its calls ended just now, as far as we know
        clock.now += 10
        assert not activator.is_active(KEY, window=10)
        task.cancel()

    asyncio.run(scenario())


def test_a_stream_opened_while_a_peer_holds_calls_starts_active() -> None:
    async def scenario() -> None:
        activator = Activator(Clock(), replica="late")
        activator.receive(report("holder", 1, 1, held=1))
        pushed, task = _pushes(activator, KEY)
        await asyncio.sleep(0)
        assert pushed == [True]
        task.cancel()

    asyncio.run(scenario())


def test_max_concurrency_counts_the_peers_calls() -> None:
    activator = Activator(Clock(), replica="me")
    changed: list[tuple[str, str, str, str]] = []
    activator.on_change = changed.append
    activator.receive(report("other", 1, 1))
    with activator.admit(KEY, max_concurrency=2):
        assert activator.local(KEY) == FleetDemand(1, 0, 0.0)
        with pytest.raises(ApiError) as refused:
            activator.admit(KEY, max_concurrency=2)
        assert refused.value.code == "ThrottlingException"
    assert changed == [KEY, KEY]  # admitted, then ended: both sent to the peers
    assert activator.local(KEY).in_flight == 0


def test_a_count_request_names_one_fleet_or_is_refused() -> None:
    key = ("ns", "iris", "abc123", "AllTraffic")
    assert peers.decode_fleet(peers.encode_fleet(key)) == key
    for bad in (b"{}", b'["ns", "iris", "abc123"]', b'["ns", "iris", "abc123", 4]', b"not json"):
        with pytest.raises(peers.ReportError):
            peers.decode_fleet(bad)
