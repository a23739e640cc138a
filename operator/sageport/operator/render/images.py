"""Which image a model container runs (pure).

SageMaker's Python SDK names SageMaker's own framework containers (``sagemaker.image_uris.retrieve``:
``683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3``), images
that live in AWS's registries and speak SageMaker's framework-container contract. Where
sageport's model server serves that framework, an :class:`ImageRule` (the chart's
``operator.imageMap``) swaps the image for it, so code written for SageMaker deploys unchanged;
any other image runs as given.

A container that sageport's model server runs (a mapped image, or none named) also gets the
framework container's script mode: ``SAGEMAKER_SUBMIT_DIRECTORY`` naming an S3 or HTTP
``sourcedir.tar.gz`` (what the SDK uploads for ``SKLearnModel(entry_point=...)``) is fetched into
``/opt/ml/code`` by an init container, as the framework container fetches it itself at start.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sageport import contract
from sageport.contract import SageMakerEnv

# The environment variable the operator reads its table from: a JSON list of {match, image}.
IMAGE_MAP_ENV = "SAGEPORT_IMAGE_MAP"
# Where SAGEMAKER_SUBMIT_DIRECTORY may point for the operator to fetch it (what the SDK writes).
FETCHED_CODE_SCHEMES = ("s3://", "https://", "http://")


class ImageMapError(ValueError):
    """The image table cannot be used; the message names the entry."""


@dataclass(frozen=True)
class ImageRule:
    """Images that fully match ``match`` (a Python regular expression) run ``image`` instead;
    ``image`` ``None`` means sageport's own model server (the runtime image). ``image`` may name
    the match's groups (``\\1``, ``\\g<name>``)."""

    match: str
    image: str | None = None

    def __post_init__(self) -> None:
        try:
            re.compile(self.match)
        except re.error as error:
            raise ImageMapError(f"image map: {self.match!r} is not a regular expression: {error}") from None

    def apply(self, specified: str, runtime_image: str) -> str | None:
        """The image to run, when this rule matches ``specified``."""
        found = re.fullmatch(self.match, specified)
        if found is None:
            return None
        if not self.image:
            return runtime_image
        try:
            return found.expand(self.image)
        except (re.error, IndexError) as error:
            raise ImageMapError(f"image map: {self.image!r} for {self.match!r}: {error}") from None


@dataclass(frozen=True)
class ResolvedImage:
    """A container's image as SageMaker's DeployedImage reports it: what the Model names
    (``specified``; sageport's runtime image when it names none) and what runs (``resolved``)."""

    specified: str
    resolved: str
    # sageport's model server runs it (mapped, or no image named): the framework-container
    # contract (script mode from SAGEMAKER_SUBMIT_DIRECTORY) is then sageport's to honour.
    served_by_sageport: bool


def resolve_image(specified: str | None, rules: Sequence[ImageRule], runtime_image: str) -> ResolvedImage:
    """The image a container runs: the first rule that matches, else the image as given."""
    if not specified:
        return ResolvedImage(runtime_image, runtime_image, served_by_sageport=True)
    for rule in rules:
        resolved = rule.apply(specified, runtime_image)
        if resolved is not None:
            return ResolvedImage(specified, resolved, served_by_sageport=True)
    return ResolvedImage(specified, specified, served_by_sageport=specified == runtime_image)


def parse_image_map(text: str) -> tuple[ImageRule, ...]:
    """The table from its JSON form (``SAGEPORT_IMAGE_MAP``): ``[{"match": ..., "image": ...}]``,
    ``image`` empty or absent for sageport's model server."""
    if not text.strip():
        return ()
    try:
        entries = json.loads(text)
    except ValueError as error:
        raise ImageMapError(f"{IMAGE_MAP_ENV} is not JSON: {error}") from None
    if entries is None:  # what Helm's toJson makes of an empty list
        return ()
    if not isinstance(entries, list):
        raise ImageMapError(f"{IMAGE_MAP_ENV} must be a JSON list of {{match, image}}")
    return tuple(_rule(index, entry) for index, entry in enumerate(entries))


def _rule(index: int, entry: Any) -> ImageRule:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("match"), str) or not entry["match"]:
        raise ImageMapError(f"{IMAGE_MAP_ENV}[{index}] needs a non-empty string 'match'")
    unknown = set(entry) - {"match", "image"}
    if unknown:
        raise ImageMapError(f"{IMAGE_MAP_ENV}[{index}] has unknown keys: {', '.join(sorted(unknown))}")
    image = entry.get("image")
    if image is not None and not isinstance(image, str):
        raise ImageMapError(f"{IMAGE_MAP_ENV}[{index}].image must be a string")
    return ImageRule(entry["match"], image or None)


def fetched_code_url(environment: Iterable[tuple[str, str]], image: ResolvedImage) -> str | None:
    """The ``sourcedir.tar.gz`` to fetch into /opt/ml/code for this container, if any."""
    if not image.served_by_sageport:
        return None  # the image's own business, as on SageMaker
    submitted = dict(environment).get(SageMakerEnv.SUBMIT_DIRECTORY, "")
    return submitted if submitted.startswith(FETCHED_CODE_SCHEMES) else None


def with_code_dir(environment: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The environment with SAGEMAKER_SUBMIT_DIRECTORY pointing at the fetched code."""
    return tuple(
        (name, contract.CODE_DIR if name == SageMakerEnv.SUBMIT_DIRECTORY else value)
        for name, value in environment
    )
