"""Names: the Kubernetes ``metadata.name`` of a SageMaker name, ARNs, and ACK's field names.

``metadata.name`` rule (stable, collision-free): a SageMaker name that is already all lower case
(so a valid DNS-1123 label: SageMaker's patterns allow only letters, digits and hyphens, at most
63) and does not end like a derived name is used as it is. Any other name becomes its lower-cased
first 51 characters, ``-h`` and the first 10 hex digits of the SHA-256 of the exact name, e.g.
``MyEndpoint`` -> ``myendpoint-h1b4c...``. A used-as-is name never ends in ``-h`` + 10 hex digits
and a derived one always does, so the two kinds never meet; two derived names meet only if 40 bits
of SHA-256 collide (and the create then fails with a clear error, never overwrites).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sageport.contract import Plural

_DERIVED_SUFFIX = re.compile(r"-h[0-9a-f]{10}\Z")
_LOWER_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_PREFIX_CHARS = 51


def object_name(sagemaker_name: str) -> str:
    """The ``metadata.name`` an object created through the API gets (see the module docstring)."""
    if _LOWER_LABEL.match(sagemaker_name) and not _DERIVED_SUFFIX.search(sagemaker_name):
        return sagemaker_name
    digest = hashlib.sha256(sagemaker_name.encode()).hexdigest()[:10]
    return f"{sagemaker_name.lower()[:_PREFIX_CHARS]}-h{digest}"


@dataclass(frozen=True)
class Kind:
    """One sageport.io kind as the API sees it."""

    kind: str  # the Kubernetes kind
    plural: str  # the resource (URL segment)
    arn_type: str  # the resource type in an ARN
    noun: str  # as SageMaker's messages name it ("endpoint configuration")
    name_member: str  # the SageMaker name's member in requests ("EndpointConfigName")
    name_field: str  # where the SageMaker name lives in the spec ("endpointConfigName")


MODEL = Kind("Model", Plural.MODELS, "model", "model", "ModelName", "modelName")
ENDPOINT_CONFIG = Kind(
    "EndpointConfig",
    Plural.ENDPOINT_CONFIGS,
    "endpoint-config",
    "endpoint configuration",
    "EndpointConfigName",
    "endpointConfigName",
)
ENDPOINT = Kind("Endpoint", Plural.ENDPOINTS, "endpoint", "endpoint", "EndpointName", "endpointName")
TRANSFORM_JOB = Kind(
    "TransformJob",
    Plural.TRANSFORM_JOBS,
    "transform-job",
    "transform job",
    "TransformJobName",
    "transformJobName",
)
KINDS = (MODEL, ENDPOINT_CONFIG, ENDPOINT, TRANSFORM_JOB)


@dataclass(frozen=True)
class Account:
    """Where ARNs say the resources live: the caller's signing region and our account id."""

    region: str
    account_id: str
    partition: str = "aws"

    def arn(self, kind: Kind, sagemaker_name: str) -> str:
        """SageMaker lower-cases the name in its ARNs."""
        return (
            f"arn:{self.partition}:sagemaker:{self.region}:{self.account_id}:"
            f"{kind.arn_type}/{sagemaker_name.lower()}"
        )


_ARN = re.compile(r"arn:(aws[a-z-]*):sagemaker:([a-z0-9-]*):([0-9]{12}):([a-z-]+)/(.+)\Z")


@dataclass(frozen=True)
class ParsedArn:
    account: Account
    arn_type: str
    name: str  # lower case, as in every SageMaker ARN


def parse_arn(arn: str) -> ParsedArn | None:
    """``arn:aws:sagemaker:<region>:<account>:<type>/<name>``, or None for anything else."""
    match = _ARN.match(arn)
    if match is None:
        return None
    partition, region, account_id, arn_type, name = match.groups()
    return ParsedArn(Account(region, account_id, partition), arn_type, name)


# ACK's spelling of botocore member names: lowerCamelCase with these words in capitals
# (aws-controllers-k8s/code-generator's initialisms), and `Type` as `type_` (a Go keyword).
_INITIALISMS = {
    "Arn": "ARN",
    "Url": "URL",
    "Uri": "URI",
    "Id": "ID",
    "Ids": "IDs",
    "Ssm": "SSM",
    "Ami": "AMI",
    "Kms": "KMS",
}
_WORDS = re.compile(r"[A-Z][a-z]*|[0-9]+[a-z]*|[a-z]+")
_EXCEPTIONS = {"Type": "type_"}


def ack_name(member: str) -> str:
    """The CRD field name of a botocore member: ``ModelDataUrl`` -> ``modelDataURL``."""
    if member in _EXCEPTIONS:
        return _EXCEPTIONS[member]
    words = _WORDS.findall(member)
    if not words or "".join(words) != member:
        return member[:1].lower() + member[1:]
    return str(words[0]).lower() + "".join(_INITIALISMS.get(word, word) for word in words[1:])
