from __future__ import annotations

import pytest

from sageport.contract import RoutingStrategy
from sageport.gateway.config import ConfigError, parse_keys, parse_routes


def test_routes_file_from_the_docs() -> None:
    (spec,) = parse_routes(
        {
            "endpoints": {
                "my-endpoint": {
                    "variants": [{"name": "AllTraffic", "weight": 1.0, "backends": ["http://127.0.0.1:8080"]}]
                }
            }
        }
    )
    assert spec.name == "my-endpoint"
    assert spec.variants[0].backends == ("http://127.0.0.1:8080",)
    assert spec.variants[0].strategy is RoutingStrategy.LEAST_OUTSTANDING_REQUESTS


@pytest.mark.parametrize(
    "document",
    [
        {"endpoints": {"bad_name": {"variants": [{"name": "a", "backends": []}]}}},
        {"endpoints": {"ep": {"variants": []}}},
        {"endpoints": {"ep": {"variants": [{"name": "a", "backends": ["ftp://x"]}]}}},
        {"endpoints": {"ep": {"variants": [{"name": "a", "backends": [], "weight": -1}]}}},
        {"unknown": 1},
    ],
)
def test_bad_routes(document: object) -> None:
    with pytest.raises(ConfigError):
        parse_routes(document)


def test_keys_file_and_scopes() -> None:
    star, scoped = parse_keys(
        {
            "keys": [
                {"accessKeyId": "A", "secretAccessKey": "s1", "endpoints": ["*"]},
                {"accessKeyId": "B", "secretAccessKey": "s2", "endpoints": ["one"]},
            ]
        }
    )
    assert star.allows("anything", None)
    assert scoped.allows("one", None)
    assert not scoped.allows("two", None)
    assert "s2" not in repr(scoped)


def test_key_errors_do_not_echo_secrets() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_keys({"keys": [{"accessKeyId": "A", "secretAccessKey": "topsecret", "extra": "topsecret"}]})
    assert "topsecret" not in str(caught.value)
