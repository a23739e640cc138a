"""Which container a Direct invocation goes to, or the SageMaker error saying why none; where a
Serial pipeline's further stages answer (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sageport.net import awserrors
from sageport.net.upstream import Target

# SageMaker's ContainerHostname pattern.
_HOSTNAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


@dataclass(frozen=True)
class Container:
    """A model container of the pod: its hostname and the port it serves on (SAGEMAKER_BIND_TO_PORT)."""

    hostname: str
    port: int

    @property
    def target(self) -> Target:
        return Target(f"http://127.0.0.1:{self.port}")


def parse_container(text: str) -> Container:
    """``hostname=port``, as the operator passes ``--container``."""
    hostname, _, port = text.partition("=")
    if not _HOSTNAME.fullmatch(hostname) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--container {text!r}: expected HOSTNAME=PORT, e.g. sklearn=23000")
    return Container(hostname, int(port))


def container_table(containers: list[Container]) -> dict[str, Container]:
    table: dict[str, Container] = {}
    for container in containers:
        if container.hostname in table:
            raise ValueError(f"container hostname {container.hostname!r} is given twice")
        table[container.hostname] = container
    return table


def choose(table: Mapping[str, Container], hostname: str | None) -> Container:
    """The container ``hostname`` names; a ValidationError (400) when it is missing or unknown."""
    if hostname is None or hostname == "":
        raise awserrors.validation_error(
            "This endpoint uses direct invocation; TargetContainerHostname is required "
            f"(one of: {', '.join(table)})."
        )
    container = table.get(hostname)
    if container is None:
        raise awserrors.validation_error(
            f"Container hostname {hostname} not found; valid hostnames: {', '.join(table)}."
        )
    return container


def parse_stage_addresses(text: str) -> dict[str, Target]:
    """The operator's ``host=ip:port,...`` (the anchor pod's stages annotation): where each
    further stage of a Serial pipeline answers. Entries that do not parse are left out (their
    stage then counts as not there, so the instance is not ready)."""
    addresses: dict[str, Target] = {}
    for entry in text.strip().split(","):
        host, _, address = entry.strip().partition("=")
        ip, _, port = address.rpartition(":")
        if _HOSTNAME.fullmatch(host) and ip and port.isdigit() and 0 < int(port) < 65536:
            addresses[host] = Target(f"http://{ip}:{port}")
    return addresses
