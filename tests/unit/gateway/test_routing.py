from __future__ import annotations

import random

import pytest

from sageport.contract import multi_model_id
from sageport.gateway.routing import (
    HOT_MODEL_IN_FLIGHT,
    Endpoint,
    EndpointSpec,
    Instance,
    RouteTable,
    RoutingStrategy,
    Serverless,
    Variant,
    VariantSpec,
    choose_instance,
    choose_shadows,
    choose_variant,
    route,
    serverless_target,
)
from sageport.net.awserrors import ApiError


def variant(
    name: str,
    weight: float,
    count: int = 1,
    strategy: RoutingStrategy = RoutingStrategy.LEAST_OUTSTANDING_REQUESTS,
) -> Variant:
    return Variant(name, weight, [Instance(f"http://{name}-{i}") for i in range(count)], strategy, None)


def test_weighted_choice_follows_cumulative_weights() -> None:
    variants = [variant("a", 3.0), variant("b", 1.0)]
    assert choose_variant(variants, 0.0) is variants[0]
    assert choose_variant(variants, 0.74) is variants[0]
    assert choose_variant(variants, 0.75) is variants[1]
    assert choose_variant(variants, 0.999) is variants[1]


def test_variants_without_instances_are_skipped_and_zero_weights_split_evenly() -> None:
    empty = variant("empty", 10.0, count=0)
    zero_a, zero_b = variant("a", 0.0), variant("b", 0.0)
    assert choose_variant([empty, zero_a, zero_b], 0.2) is zero_a
    assert choose_variant([empty, zero_a, zero_b], 0.7) is zero_b
    assert choose_variant([empty], 0.5) is None


def test_weighted_choice_distribution() -> None:
    rng = random.Random(7)
    variants = [variant("a", 0.2), variant("b", 0.8)]
    picks = [choose_variant(variants, rng.random()) for _ in range(10000)]
    share = sum(pick is variants[0] for pick in picks) / len(picks)
    assert 0.18 < share < 0.22


def test_least_outstanding_requests() -> None:
    chosen = variant("v", 1.0, count=3)
    chosen.instances[0].outstanding = 2
    chosen.instances[1].outstanding = 0
    chosen.instances[2].outstanding = 1
    rng = random.Random(1)
    assert all(choose_instance(chosen, rng) is chosen.instances[1] for _ in range(20))


def test_random_strategy_uses_every_instance() -> None:
    chosen = variant("v", 1.0, count=3, strategy=RoutingStrategy.RANDOM)
    chosen.instances[0].outstanding = 100
    rng = random.Random(3)
    seen = {choose_instance(chosen, rng).base_url for _ in range(200)}  # type: ignore[union-attr]
    assert len(seen) == 3


def _table() -> RouteTable:
    table = RouteTable()
    table.replace(
        [
            EndpointSpec(
                "ep",
                (
                    VariantSpec("A", 1.0, ("http://a:8080",)),
                    VariantSpec("B", 0.0, ("http://b:8080/",)),
                ),
            ),
            EndpointSpec("creating", (VariantSpec("A", 1.0, ("http://c",)),), status="Creating"),
        ]
    )
    return table


def test_route_errors() -> None:
    table = _table()
    rng = random.Random(0)
    endpoint = table.lookup("ep")
    assert endpoint is not None
    assert route(endpoint, None, None, rng).variant.name == "A"
    assert route(endpoint, "B", None, rng).instance.invocations_url == "http://b:8080/invocations"
    with pytest.raises(ApiError) as caught:
        route(endpoint, "C", None, rng)
    assert caught.value.code == "ValidationError"
    with pytest.raises(ApiError):
        route(endpoint, None, "container", rng)
    creating = table.lookup("creating")
    assert creating is not None
    with pytest.raises(ApiError, match="not in service"):
        route(creating, None, None, rng)


def test_replace_keeps_outstanding_counters() -> None:
    table = _table()
    endpoint = table.lookup("ep")
    assert endpoint is not None
    endpoint.variants[0].instances[0].outstanding = 5
    table.replace([EndpointSpec("ep", (VariantSpec("A", 1.0, ("http://a:8080", "http://new:8080")),))])
    updated = table.lookup("ep")
    assert updated is not None
    assert [instance.outstanding for instance in updated.variants[0].instances] == [5, 0]
    assert table.lookup("creating") is None


def test_shadows_get_copies_by_their_fraction_and_only_with_an_instance() -> None:
    def shadow(name: str, fraction: float, ready: bool = True) -> Variant:
        return Variant(name, fraction, [Instance("http://10.0.0.1:8080")] if ready else [],
                       RoutingStrategy.RANDOM, None)  # fmt: skip

    rng = random.Random(7)
    half, everything, starting = shadow("half", 0.5), shadow("all", 1.0), shadow("starting", 1.0, ready=False)
    picks = [choose_shadows([half, everything, starting], rng) for _ in range(2000)]
    assert all(everything in chosen and starting not in chosen for chosen in picks)
    assert 900 < sum(half in chosen for chosen in picks) < 1100


def _mme(count: int) -> Endpoint:
    instances = [Instance(f"http://10.0.{i // 250}.{i % 250}:8080") for i in range(count)]
    variant = Variant("A", 1.0, instances, RoutingStrategy.LEAST_OUTSTANDING_REQUESTS, None, multi_model=True)
    return Endpoint("mme", "InService", None, [variant])


def test_a_model_goes_to_one_instance_and_adding_one_moves_about_a_tenth() -> None:
    models = [f"team/m{i}.tar.gz" for i in range(5000)]
    ten, eleven = _mme(10), _mme(11)
    before = {m: route(ten, None, None, random.Random(1), m).instance.base_url for m in models}
    again = {m: route(ten, None, None, random.Random(2), m).instance.base_url for m in models}
    after = {m: route(eleven, None, None, random.Random(3), m).instance.base_url for m in models}
    assert before == again  # stable: every gateway replica agrees
    moved = sum(before[m] != after[m] for m in models)
    assert 0.06 * len(models) < moved < 0.13 * len(models)  # ~1/11, and only to the new instance
    assert {after[m] for m in models if before[m] != after[m]} == {eleven.variants[0].instances[-1].base_url}
    counts = [sum(1 for m in models if before[m] == i.base_url) for i in ten.variants[0].instances]
    assert min(counts) > 350  # spread over all ten
    chosen = route(ten, None, None, random.Random(1), "team/m1.tar.gz")
    assert chosen.path == f"/models/{multi_model_id('team/m1.tar.gz')}/invoke"


def test_a_hot_model_spills_to_its_second_instance_and_a_busy_instance_alone_does_not() -> None:
    endpoint = _mme(4)
    first = route(endpoint, None, None, random.Random(1), "hot.tar.gz").instance
    first.outstanding = 50  # busy with other models: this one still goes home
    assert route(endpoint, None, None, random.Random(1), "hot.tar.gz").instance is first
    for _ in range(HOT_MODEL_IN_FLIGHT):
        first.begin_model_call("hot.tar.gz")
    second = route(endpoint, None, None, random.Random(1), "hot.tar.gz").instance
    assert second is not first  # hot: the less busy of its two instances
    second.outstanding = 60
    assert route(endpoint, None, None, random.Random(1), "hot.tar.gz").instance is first
    first.end_model_call("hot.tar.gz")
    assert route(endpoint, None, None, random.Random(1), "hot.tar.gz").instance is first  # cooled down
    assert first.model_calls == {"hot.tar.gz": HOT_MODEL_IN_FLIGHT - 1}


@pytest.mark.parametrize(
    ("multi_model", "target", "message"),
    [
        (False, "m.tar.gz", "is not a multi-model endpoint and does not support target model header"),
        (True, None, "is missing a target model header"),
        (True, "../secret.tar.gz", "must be a key relative to the model's S3 prefix"),
        (True, "/abs/m.tar.gz", "must be a key relative to the model's S3 prefix"),
        (True, "a/../../m.tar.gz", "must be a key relative to the model's S3 prefix"),
    ],
)
def test_target_model_errors(multi_model: bool, target: str | None, message: str) -> None:
    endpoint = _mme(2)
    endpoint.variants[0].multi_model = multi_model
    with pytest.raises(ApiError) as raised:
        route(endpoint, None, None, random.Random(1), target)
    assert (raised.value.code, raised.value.status) == ("ValidationError", 400)
    assert message in raised.value.message


def _serverless_table(*backends: str, realtime: bool = False) -> RouteTable:
    limits = Serverless(max_concurrency=5, setup_seconds=60.0)
    variants = [VariantSpec("S", 1.0, tuple(backends), serverless=limits)]
    if realtime:
        variants.append(VariantSpec("R", 1.0, ("http://r:8080",)))
    table = RouteTable()
    table.replace([EndpointSpec("sl", tuple(variants))])
    return table


def test_a_serverless_variant_at_zero_is_the_target_to_wake() -> None:
    endpoint = _serverless_table().lookup("sl")
    assert endpoint is not None
    chosen = serverless_target(endpoint, None, 0.3)
    assert chosen is not None
    assert (chosen.name, chosen.instances) == ("S", [])
    assert serverless_target(endpoint, "S", 0.3) is chosen
    mixed = _serverless_table(realtime=True).lookup("sl")
    assert mixed is not None
    assert serverless_target(mixed, None, 0.3) is None  # routed as usual, to the real-time variant
    assert serverless_target(mixed, "R", 0.3) is None


def test_the_table_tells_a_listener_when_it_changes() -> None:
    table = _serverless_table()
    seen: list[int] = []
    table.changed = lambda: seen.append(
        len((table.lookup("sl") or Endpoint("", "", None)).variants[0].instances)
    )
    table.replace([EndpointSpec("sl", (VariantSpec("S", 1.0, ("http://s:8080",)),))])
    assert seen == [1]
