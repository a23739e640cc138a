"""AWS Signature Version 4 verification for requests signed by botocore (signing name ``sagemaker``).

Pure: the caller supplies the request parts, a secret lookup and the current time. The canonical
request is rebuilt exactly as botocore builds it: the path as sent on the wire, dot segments and
repeated slashes removed, then percent-encoded once more (``safe='/~'``); the query string split
on ``&``/``=`` and sorted as-is; signed headers lower-cased, values trimmed with inner runs of
whitespace collapsed, repeats joined by commas.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from sageport.net import awserrors

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_CLOCK_SKEW = timedelta(minutes=15)
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
_AUTH_FIELDS = ("Credential", "SignedHeaders", "Signature")
_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    date: str
    region: str
    service: str
    terminal: str


@dataclass(frozen=True)
class ParsedAuthorization:
    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str


@dataclass(frozen=True)
class SignedRequest:
    """The parts of an HTTP request that SigV4 covers.

    ``headers`` maps lower-cased names to every value received for that name, in order.
    ``payload_hash`` is the hex SHA-256 of the body (the caller computes it, possibly off-loop).
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, Sequence[str]]
    payload_hash: str


def is_sigv4(authorization: str) -> bool:
    return authorization.startswith(ALGORITHM + " ")


def parse_authorization(authorization: str) -> ParsedAuthorization:
    if not is_sigv4(authorization):
        raise awserrors.incomplete_signature("Authorization header requires the AWS4-HMAC-SHA256 algorithm.")
    fields: dict[str, str] = {}
    for part in authorization[len(ALGORITHM) + 1 :].split(","):
        name, separator, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not separator or name not in _AUTH_FIELDS or not value or " " in value:
            raise awserrors.incomplete_signature("Authorization header is malformed.")
        fields[name] = value
    missing = [name for name in _AUTH_FIELDS if name not in fields]
    if missing:
        raise awserrors.incomplete_signature(
            f"Authorization header requires {', '.join(missing)} parameter(s)."
        )
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise awserrors.incomplete_signature(
            "Credential must have the form <key>/<date>/<region>/<service>/aws4_request."
        )
    credential = Credential(*scope)
    signed_headers = tuple(fields["SignedHeaders"].split(";"))
    return ParsedAuthorization(credential, signed_headers, fields["Signature"])


def _remove_dot_segments(path: str) -> str:
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if kept:
                kept.pop()
        else:
            kept.append(segment)
    leading = "/" if path.startswith("/") else ""
    trailing = "/" if path.endswith("/") and kept else ""
    return leading + "/".join(kept) + trailing


@functools.lru_cache(maxsize=4096)
def canonical_path(raw_path: str) -> str:
    return quote(_remove_dot_segments(raw_path), safe="/~")


def canonical_query(raw_query: str) -> str:
    if not raw_query:
        return ""
    pairs = sorted(tuple(pair.partition("=")[::2]) for pair in raw_query.split("&"))
    return "&".join(f"{key}={value}" for key, value in pairs)


def _trim_all(value: str) -> str:
    return " ".join(value.split())


def canonical_request(request: SignedRequest, signed_headers: Sequence[str]) -> str:
    header_lines = []
    for name in sorted(set(signed_headers)):
        values = request.headers.get(name)
        if values is None:
            raise awserrors.invalid_signature(f"Signed header {name} is missing from the request.")
        header_lines.append(f"{name}:{','.join(_trim_all(value) for value in values)}")
    return "\n".join(
        (
            request.method.upper(),
            canonical_path(request.raw_path),
            canonical_query(request.raw_query),
            "\n".join(header_lines) + "\n",
            ";".join(sorted(set(signed_headers))),
            request.payload_hash,
        )
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


# The key changes once a day per secret and region: derive it once, not four HMACs per request.
@functools.lru_cache(maxsize=1024)
def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def compute_signature(
    request: SignedRequest, parsed: ParsedAuthorization, amz_date: str, secret_access_key: str
) -> str:
    credential = parsed.credential
    scope = f"{credential.date}/{credential.region}/{credential.service}/{credential.terminal}"
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            amz_date,
            scope,
            hashlib.sha256(canonical_request(request, parsed.signed_headers).encode()).hexdigest(),
        )
    )
    key = signing_key(secret_access_key, credential.date, credential.region, credential.service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def _request_time(request: SignedRequest) -> tuple[str, datetime]:
    values = request.headers.get("x-amz-date")
    if not values:
        raise awserrors.incomplete_signature("Authorization requires an X-Amz-Date header.")
    amz_date = values[0].strip()
    try:
        if _AMZ_DATE.fullmatch(amz_date) is None:
            raise ValueError(amz_date)
        moment = datetime(
            int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]),
            int(amz_date[9:11]), int(amz_date[11:13]), int(amz_date[13:15]), tzinfo=UTC,
        )  # fmt: skip
    except ValueError:
        raise awserrors.incomplete_signature(
            f"X-Amz-Date {amz_date!r} is not in YYYYMMDD'T'HHMMSS'Z' form."
        ) from None
    return amz_date, moment


def verify(
    request: SignedRequest,
    authorization: str,
    lookup_secret: Callable[[str], str | None],
    now: datetime,
    service: str = "sagemaker",
) -> str:
    """Check the signature and return the access key id; raise ApiError (403) otherwise."""
    parsed = parse_authorization(authorization)
    credential = parsed.credential
    if credential.service != service or credential.terminal != "aws4_request":
        raise awserrors.invalid_signature(f"Credential should be scoped to correct service: '{service}'.")
    if "host" not in parsed.signed_headers:
        raise awserrors.invalid_signature("SignedHeaders must include host.")
    amz_date, moment = _request_time(request)
    if credential.date != amz_date[:8]:
        raise awserrors.invalid_signature("Credential date does not match X-Amz-Date.")
    if abs(now - moment) > MAX_CLOCK_SKEW:
        raise awserrors.invalid_signature(
            f"Signature expired: {amz_date} is now earlier or later than the allowed 15 minute "
            f"window around {now.strftime(_AMZ_DATE_FORMAT)}."
        )
    secret = lookup_secret(credential.access_key_id)
    if secret is None:
        raise awserrors.unrecognized_client()
    expected = compute_signature(request, parsed, amz_date, secret)
    if not hmac.compare_digest(expected, parsed.signature):
        raise awserrors.invalid_signature(
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method."
        )
    return credential.access_key_id


def declared_payload_hash(headers: Mapping[str, Sequence[str]]) -> str | None:
    """The client's own body hash header, if it sent one (botocore does only for unsigned payloads)."""
    values = headers.get("x-amz-content-sha256")
    return values[0].strip() if values else None
