"""The operations: each reads from a :class:`Store` (the watch cache) and writes through a
:class:`Writer` (the Kubernetes API). Both are handed in, so this module does no I/O of its own
and is tested with in-memory fakes; :mod:`sageport.controlapi.kube` provides the real ones.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sageport.contract import ANNOTATION_STOP_REQUESTED, API_GROUP, EndpointStatus, TransformJobStatus
from sageport.controlapi import errors
from sageport.controlapi.names import (
    ENDPOINT,
    ENDPOINT_CONFIG,
    KINDS,
    MODEL,
    TRANSFORM_JOB,
    Account,
    Kind,
    object_name,
    parse_arn,
)
from sageport.controlapi.shapes import ShapeTable
from sageport.controlapi.translate import (
    describe_endpoint,
    describe_endpoint_config,
    describe_model,
    describe_transform_job,
    kube_error,
    new_object,
    page,
    parse_list_query,
    sagemaker_name,
    summary,
    to_spec,
    transform_job_status,
    validate,
)
from sageport.net.awserrors import ApiError

log = logging.getLogger("sageport.controlapi")

TARGET_PREFIX = "SageMaker."
# An update is refused while one of these is under way (SageMaker: "Cannot update in-progress").
_IN_PROGRESS = frozenset(
    {
        EndpointStatus.CREATING,
        EndpointStatus.UPDATING,
        EndpointStatus.SYSTEM_UPDATING,
        EndpointStatus.ROLLING_BACK,
        EndpointStatus.DELETING,
    }
)
# SageMaker's limit of tags on one resource (TagList max), which the CRDs hold too.
_MAX_TAGS = 50
# A tags change is a read-modify-write of spec.tags guarded by resourceVersion: retried on conflict.
_TAG_ATTEMPTS = 4
_CREDENTIAL_REGION = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/")


class KubeRefusalError(Exception):
    """The Kubernetes API refused a write (status and its message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _resource_version(obj: Mapping[str, Any]) -> int:
    try:
        return int(str(obj.get("metadata", {}).get("resourceVersion", "0")))
    except ValueError:
        return 0


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata", {})
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


class Store:
    """The watch cache: the objects of each kind by namespace and name.

    Watch threads feed it (:meth:`replace`, :meth:`event`); the API puts its own writes in at
    once (:meth:`remember`, :meth:`forget`) so a Describe right after a Create sees the object.
    A watch event older than what is held (by resourceVersion) is ignored, and so is a late event
    of an object this API deleted.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # (plural, ns) -> name -> obj
        self._deleted: dict[tuple[str, str, str], int] = {}  # (plural, ns, name) -> last version
        self.synced: set[str] = set()

    # ---- fed by the watches ----
    def replace(self, kind: Kind, items: list[Mapping[str, Any]], namespace: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._objects if k[0] == kind.plural and namespace in (None, k[1])]:
                del self._objects[key]
            for gone in [k for k in self._deleted if k[0] == kind.plural and namespace in (None, k[1])]:
                del self._deleted[gone]
            for obj in items:
                self._put(kind, obj)
            self.synced.add(kind.plural)

    def event(self, kind: Kind, event_type: str, obj: Mapping[str, Any]) -> None:
        namespace, name = _key(obj)
        version = _resource_version(obj)
        with self._lock:
            tombstone = self._deleted.get((kind.plural, namespace, name))
            if event_type == "DELETED":
                self._objects.get((kind.plural, namespace), {}).pop(name, None)
                self._deleted.pop((kind.plural, namespace, name), None)
                return
            if tombstone is not None and 0 < version <= tombstone:
                return
            current = self._objects.get((kind.plural, namespace), {}).get(name)
            if current is not None and 0 < version < _resource_version(current):
                return
            self._deleted.pop((kind.plural, namespace, name), None)
            self._put(kind, obj)

    def _put(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        namespace, name = _key(obj)
        slim = dict(obj)
        metadata = dict(slim.get("metadata", {}))
        metadata.pop("managedFields", None)
        slim["metadata"] = metadata
        self._objects.setdefault((kind.plural, namespace), {})[name] = slim

    # ---- the API's own writes ----
    def remember(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        self.event(kind, "MODIFIED", obj)

    def forget(self, kind: Kind, obj: Mapping[str, Any]) -> None:
        namespace, name = _key(obj)
        with self._lock:
            self._objects.get((kind.plural, namespace), {}).pop(name, None)
            self._deleted[(kind.plural, namespace, name)] = _resource_version(obj)

    # ---- reads ----
    def all(self, kind: Kind, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._objects.get((kind.plural, namespace), {}).values())

    def find(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        """The object whose SageMaker name is ``name`` (the oldest, should kubectl have made two)."""
        with self._lock:
            objects = self._objects.get((kind.plural, namespace), {})
            direct = objects.get(object_name(name))
            if direct is not None and sagemaker_name(kind, direct) == name:
                return direct
            matches = [obj for obj in objects.values() if sagemaker_name(kind, obj) == name]
        if not matches:
            return None
        return min(matches, key=lambda obj: (str(obj["metadata"].get("creationTimestamp", "")), _key(obj)))


class Writer(Protocol):
    """Writes to the Kubernetes API as ``user`` (impersonated; None: the gateway's own identity);
    each raises :class:`KubeRefusalError` when refused."""

    async def create(
        self, kind: Kind, namespace: str, body: Mapping[str, Any], *, user: str | None
    ) -> Mapping[str, Any]: ...

    async def delete(
        self, kind: Kind, namespace: str, name: str, *, user: str | None
    ) -> Mapping[str, Any]: ...

    async def patch(
        self, kind: Kind, namespace: str, name: str, patch: Mapping[str, Any], *, user: str | None
    ) -> Mapping[str, Any]: ...

    async def get(self, kind: Kind, namespace: str, name: str, *, user: str | None) -> Mapping[str, Any]: ...


class Authorizer(Protocol):
    """Whether Kubernetes RBAC lets ``user`` do ``verb`` on ``kind`` in ``namespace`` (reads are
    served from the cache, so they are checked here rather than by the API server)."""

    async def allowed(self, user: str, verb: str, kind: Kind, namespace: str) -> bool: ...


class AllowAll:
    """No read checks: for callers without an identity of their own (``--no-auth``)."""

    async def allowed(self, user: str, verb: str, kind: Kind, namespace: str) -> bool:
        return True


@dataclass(frozen=True)
class Caller:
    """Who calls: the namespace the key acts in, the account ARNs are made in, and the
    Kubernetes user every call acts as (None: the gateway's own identity, for ``--no-auth``)."""

    namespace: str
    account: Account
    user: str | None = None


def region_of(authorization: str | None, default: str) -> str:
    """The region a SigV4 request was signed for (the ARNs' region)."""
    match = _CREDENTIAL_REGION.search(authorization or "")
    return match.group(1) if match else default


Operation = Callable[[Mapping[str, Any], Caller], Awaitable[dict[str, Any]]]


class ControlApi:
    def __init__(
        self, table: ShapeTable, store: Store, writer: Writer, authorizer: Authorizer | None = None
    ) -> None:
        self.table = table
        self.store = store
        self.writer = writer
        self.authorizer: Authorizer = authorizer or AllowAll()
        self.operations: dict[str, Operation] = {
            "CreateModel": self.create_model,
            "DescribeModel": self._describer(MODEL),
            "ListModels": self._lister(MODEL, "Models", "ModelSummary", "Models"),
            "DeleteModel": self._deleter(MODEL),
            "CreateEndpointConfig": self.create_endpoint_config,
            "DescribeEndpointConfig": self._describer(ENDPOINT_CONFIG),
            "ListEndpointConfigs": self._lister(
                ENDPOINT_CONFIG, "EndpointConfigs", "EndpointConfigSummary", "EndpointConfigs"
            ),
            "DeleteEndpointConfig": self._deleter(ENDPOINT_CONFIG),
            "CreateEndpoint": self.create_endpoint,
            "DescribeEndpoint": self._describer(ENDPOINT),
            "ListEndpoints": self._lister(ENDPOINT, "Endpoints", "EndpointSummary", "Endpoints"),
            "UpdateEndpoint": self.update_endpoint,
            "UpdateEndpointWeightsAndCapacities": self.update_endpoint_weights_and_capacities,
            "DeleteEndpoint": self._deleter(ENDPOINT),
            "CreateTransformJob": self.create_transform_job,
            "DescribeTransformJob": self._describer(TRANSFORM_JOB),
            "ListTransformJobs": self._lister(
                TRANSFORM_JOB,
                "TransformJobs",
                "TransformJobSummary",
                "TransformJobSummaries",
                "TransformJobStatus",
            ),
            "StopTransformJob": self.stop_transform_job,
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
        }

    async def call(self, target: str, body: bytes, caller: Caller) -> dict[str, Any]:
        """Run ``X-Amz-Target`` on a JSON body; raises :class:`ApiError` in SageMaker's shapes."""
        operation = self.operations.get(target.removeprefix(TARGET_PREFIX))
        if not target.startswith(TARGET_PREFIX) or operation is None:
            raise errors.unknown_operation(target)
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            raise errors.serialization("The request body is not valid JSON.") from None
        if not isinstance(request, dict):
            raise errors.serialization("The request body must be a JSON object.")
        return await operation(request, caller)

    # ---- the shared shapes of Describe, List, Delete ----
    def describe(self, kind: Kind, obj: Mapping[str, Any], account: Account) -> dict[str, Any]:
        if kind is MODEL:
            return describe_model(self.table, obj, account)
        if kind is ENDPOINT_CONFIG:
            return describe_endpoint_config(self.table, obj, account)
        if kind is TRANSFORM_JOB:
            shape = self.table.operations["DescribeTransformJob"].output or ""
            return describe_transform_job(self.table, obj, account, shape)
        return describe_endpoint(self.table, obj, account)

    def _input(self, operation: str) -> str:
        return self.table.operations[operation].input or ""

    def _require(self, kind: Kind, caller: Caller, name: str) -> dict[str, Any]:
        obj = self.store.find(kind, caller.namespace, name)
        if obj is None:
            raise errors.not_found(kind, caller.account, name)
        return obj

    async def _check_read(self, caller: Caller, verb: str, kind: Kind, operation: str, name: str) -> None:
        """Reads come from the cache: RBAC is asked (SubjectAccessReview, cached) whether the
        caller's identity may ``get``/``list`` the kind, as the API server would on a GET."""
        if caller.user is None or await self.authorizer.allowed(caller.user, verb, kind, caller.namespace):
            return
        raise errors.access_denied(
            caller.user,
            operation,
            caller.account.arn(kind, name),
            f"Kubernetes RBAC does not allow {verb} on {kind.plural}.{API_GROUP} in namespace {caller.namespace}",
        )

    def _describer(self, kind: Kind) -> Operation:
        async def describe(request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
            validate(self.table, self._input(f"Describe{kind.kind}"), request)
            name = request[kind.name_member]
            await self._check_read(caller, "get", kind, f"Describe{kind.kind}", name)
            obj = self.store.find(kind, caller.namespace, name)
            if obj is None:
                raise (
                    errors.job_not_found(name)
                    if kind is TRANSFORM_JOB
                    else errors.not_found(kind, caller.account, name)
                )
            return self.describe(kind, obj, caller.account)

        return describe

    def _lister(
        self,
        kind: Kind,
        plural: str,
        summary_shape: str,
        list_member: str,
        status_member: str = "EndpointStatus",
    ) -> Operation:
        async def list_objects(request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
            validate(self.table, self._input(f"List{plural}"), request)
            await self._check_read(caller, "list", kind, f"List{plural}", "*")
            query = parse_list_query(request)
            entries = [
                summary(self.table, summary_shape, self.describe(kind, obj, caller.account))
                for obj in self.store.all(kind, caller.namespace)
            ]
            selected, token = page(entries, query, kind.name_member, status_member)
            response: dict[str, Any] = {list_member: selected}
            if token is not None:
                response["NextToken"] = token
            return response

        return list_objects

    def _deleter(self, kind: Kind) -> Operation:
        async def delete(request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
            validate(self.table, self._input(f"Delete{kind.kind}"), request)
            name = request[kind.name_member]
            obj = self._require(kind, caller, name)
            try:
                deleted = await self.writer.delete(
                    kind, caller.namespace, obj["metadata"]["name"], user=caller.user
                )
            except KubeRefusalError as refusal:
                if refusal.status == 404:
                    self.store.forget(kind, obj)
                    raise errors.not_found(kind, caller.account, name) from None
                raise self._refused(refusal, None, f"Delete{kind.kind}", kind, caller, name) from None
            self.store.forget(kind, deleted if deleted.get("metadata") else obj)
            return {}

        return delete

    def _refused(
        self,
        refusal: KubeRefusalError,
        input_shape: str | None,
        operation: str,
        kind: Kind,
        caller: Caller,
        name: str,
    ) -> ApiError:
        log.info("Kubernetes refused %s %s: %s", operation, name, refusal.message)
        return kube_error(
            self.table,
            input_shape,
            refusal.status,
            refusal.message,
            operation,
            caller.account.arn(kind, name),
            caller.user,
        )

    async def _create(
        self, kind: Kind, input_shape: str, spec: Mapping[str, Any], caller: Caller, name: str
    ) -> None:
        body = new_object(kind, caller.namespace, name, spec)
        try:
            created = await self.writer.create(kind, caller.namespace, body, user=caller.user)
        except KubeRefusalError as refusal:
            if refusal.status == 409:
                taken = self.store.all(kind, caller.namespace)
                holder = next((o for o in taken if o["metadata"]["name"] == body["metadata"]["name"]), None)
                if holder is None or sagemaker_name(kind, holder) == name:
                    raise errors.already_exists(kind, caller.account, name) from None
                raise errors.resource_in_use(
                    f"The Kubernetes object {kind.kind} {body['metadata']['name']} that {name} maps to "
                    f"is taken by {kind.name_member} {sagemaker_name(kind, holder)}."
                ) from None
            raise self._refused(refusal, input_shape, f"Create{kind.kind}", kind, caller, name) from None
        self.store.remember(kind, created)

    # ---- Create / Update ----
    async def create_model(self, request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        spec = to_spec(self.table, "CreateModelInput", request)
        name = request["ModelName"]
        if self.store.find(MODEL, caller.namespace, name) is not None:
            raise errors.already_exists(MODEL, caller.account, name)
        await self._create(MODEL, "CreateModelInput", spec, caller, name)
        return {"ModelArn": caller.account.arn(MODEL, name)}

    async def create_endpoint_config(self, request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        spec = to_spec(self.table, "CreateEndpointConfigInput", request)
        name = request["EndpointConfigName"]
        if self.store.find(ENDPOINT_CONFIG, caller.namespace, name) is not None:
            raise errors.already_exists(ENDPOINT_CONFIG, caller.account, name)
        for variant in [*request.get("ProductionVariants", ()), *request.get("ShadowProductionVariants", ())]:
            model = variant.get("ModelName")
            if model and self.store.find(MODEL, caller.namespace, model) is None:
                raise errors.not_found(MODEL, caller.account, model)
        await self._create(ENDPOINT_CONFIG, "CreateEndpointConfigInput", spec, caller, name)
        return {"EndpointConfigArn": caller.account.arn(ENDPOINT_CONFIG, name)}

    async def create_endpoint(self, request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        spec = to_spec(self.table, "CreateEndpointInput", request)
        name = request["EndpointName"]
        if self.store.find(ENDPOINT, caller.namespace, name) is not None:
            raise errors.already_exists(ENDPOINT, caller.account, name)
        self._require(ENDPOINT_CONFIG, caller, request["EndpointConfigName"])
        await self._create(ENDPOINT, "CreateEndpointInput", spec, caller, name)
        return {"EndpointArn": caller.account.arn(ENDPOINT, name)}

    async def update_endpoint(self, request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        """A new config (and deployment policy) for an endpoint: the operator does the blue/green
        or rolling update it describes. Variant properties are not retained (SageMaker's default):
        RetainAllVariantProperties is refused by name, not ignored."""
        leave_out = ("EndpointName", "RetainAllVariantProperties", "ExcludeRetainedVariantProperties")
        spec = to_spec(self.table, "UpdateEndpointInput", request, leave_out=("RetainDeploymentConfig",))
        for member in leave_out[1:]:
            if request.get(member):
                raise errors.validation(f"sageport does not support the request member {member} yet.")
        name = request["EndpointName"]
        endpoint = self._require(ENDPOINT, caller, name)
        status = describe_endpoint(self.table, endpoint, caller.account)["EndpointStatus"]
        if status in _IN_PROGRESS:
            raise errors.validation(
                f'Cannot update in-progress endpoint "{caller.account.arn(ENDPOINT, name)}".'
            )
        config = self._require(ENDPOINT_CONFIG, caller, request["EndpointConfigName"])
        converted = _real_time_made_serverless(endpoint, config)
        if converted:
            raise errors.validation(
                f"Cannot update endpoint {name}: EndpointConfig {request['EndpointConfigName']} makes "
                f"real-time variant(s) {', '.join(converted)} serverless; a real-time variant cannot be "
                "converted to serverless. Create a new endpoint instead."
            )
        deployment = spec.get("deploymentConfig")
        if deployment is None and request.get("RetainDeploymentConfig"):
            deployment = endpoint.get("spec", {}).get("deploymentConfig")
        # Variant properties are not retained (SageMaker's default): weights and counts set by
        # UpdateEndpointWeightsAndCapacities belonged to the old config's variants.
        patch = {
            "spec": {
                "endpointConfigName": request["EndpointConfigName"],
                "deploymentConfig": deployment,
                "desiredWeightsAndCapacities": None,
            }
        }
        try:
            updated = await self.writer.patch(
                ENDPOINT, caller.namespace, endpoint["metadata"]["name"], patch, user=caller.user
            )
        except KubeRefusalError as refusal:
            if refusal.status == 404:
                raise errors.not_found(ENDPOINT, caller.account, name) from None
            raise self._refused(
                refusal, "UpdateEndpointInput", "UpdateEndpoint", ENDPOINT, caller, name
            ) from None
        self.store.remember(ENDPOINT, updated)
        return {"EndpointArn": caller.account.arn(ENDPOINT, name)}

    # ---- TransformJobs: the operator runs them; the API creates, reads and stops ----
    async def create_transform_job(self, request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        shape = self._input("CreateTransformJob")
        spec = to_spec(self.table, shape, request)
        name = request["TransformJobName"]
        arn = caller.account.arn(TRANSFORM_JOB, name)
        if self.store.find(TRANSFORM_JOB, caller.namespace, name) is not None:
            raise errors.job_in_use(arn)
        self._require(MODEL, caller, request["ModelName"])
        try:
            await self._create(TRANSFORM_JOB, shape, spec, caller, name)
        except ApiError as error:
            if error.message.startswith("Cannot create already existing"):
                raise errors.job_in_use(arn) from None
            raise
        return {"TransformJobArn": arn}

    async def stop_transform_job(self, request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        """Sets the stop-requested annotation (a TransformJob's spec is immutable); the operator
        stops the job's pods and writes Stopped. Stopping a stopping job is a no-op, as in
        SageMaker; a job that already ended is refused."""
        validate(self.table, self._input("StopTransformJob"), request)
        name = request["TransformJobName"]
        job = self.store.find(TRANSFORM_JOB, caller.namespace, name)
        if job is None:
            raise errors.resource_not_found(f"Could not find requested job with name {name}")
        status = transform_job_status(job)
        if status not in (TransformJobStatus.IN_PROGRESS, TransformJobStatus.STOPPING):
            raise errors.validation(
                f"The request was rejected because the transform job is in status {status}."
            )
        patch = {"metadata": {"annotations": {ANNOTATION_STOP_REQUESTED: "true"}}}
        try:
            updated = await self.writer.patch(
                TRANSFORM_JOB, caller.namespace, job["metadata"]["name"], patch, user=caller.user
            )
        except KubeRefusalError as refusal:
            if refusal.status == 404:
                raise errors.resource_not_found(f"Could not find requested job with name {name}") from None
            raise self._refused(refusal, None, "StopTransformJob", TRANSFORM_JOB, caller, name) from None
        self.store.remember(TRANSFORM_JOB, updated)
        return {}

    # ---- tags: spec.tags of the object an ARN names ----
    def _tagged(self, caller: Caller, arn: str) -> tuple[Kind, dict[str, Any]]:
        parsed = parse_arn(arn)
        kind = next((k for k in KINDS if parsed is not None and k.arn_type == parsed.arn_type), None)
        if parsed is None or kind is None:
            taggable = ", ".join(k.arn_type for k in KINDS)
            raise errors.validation(
                f"sageport tags only these resource types ({taggable}); got the ARN {arn}."
            )
        if parsed.account.account_id != caller.account.account_id:
            raise errors.validation(f"Resource {arn} is not in this account ({caller.account.account_id}).")
        # ARNs lower-case the name: the oldest object whose SageMaker name matches, ignoring case.
        matches = [
            o
            for o in self.store.all(kind, caller.namespace)
            if sagemaker_name(kind, o).lower() == parsed.name
        ]
        if not matches:
            raise errors.not_found(kind, caller.account, parsed.name)
        return kind, min(
            matches, key=lambda o: (str(o["metadata"].get("creationTimestamp", "")), o["metadata"]["name"])
        )

    async def _retag(
        self,
        caller: Caller,
        arn: str,
        operation: str,
        change: Callable[[list[dict[str, str]]], list[dict[str, str]]],
    ) -> list[dict[str, str]]:
        """Apply ``change`` to the object's tags: a merge patch of spec.tags guarded by the
        resourceVersion it was computed from, so two concurrent calls never lose a tag."""
        kind, obj = self._tagged(caller, arn)
        name = sagemaker_name(kind, obj)
        for _ in range(_TAG_ATTEMPTS):
            tags = change(_tags(obj))
            if len(tags) > _MAX_TAGS:
                raise errors.validation(
                    f"{arn} would have {len(tags)} tags; a resource may have at most {_MAX_TAGS}."
                )
            patch = {
                "metadata": {"resourceVersion": obj["metadata"].get("resourceVersion")},
                "spec": {"tags": [{"key": t["Key"], "value": t["Value"]} for t in tags] or None},
            }
            try:
                updated = await self.writer.patch(
                    kind, caller.namespace, obj["metadata"]["name"], patch, user=caller.user
                )
            except KubeRefusalError as refusal:
                if refusal.status == 409:  # changed since it was read: read it again, as the caller
                    try:
                        obj = dict(
                            await self.writer.get(
                                kind, caller.namespace, obj["metadata"]["name"], user=caller.user
                            )
                        )
                    except KubeRefusalError as again:
                        refusal = again
                    else:
                        continue
                if refusal.status == 404:
                    raise errors.not_found(kind, caller.account, name) from None
                raise self._refused(refusal, None, operation, kind, caller, name) from None
            self.store.remember(kind, updated)
            return _tags(updated)
        raise errors.resource_in_use(f"{arn} kept changing while its tags were updated; retry the request.")

    async def add_tags(self, request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        """Adds or overwrites (by key) the given tags; answers the resource's tags."""
        validate(self.table, "AddTagsInput", request)
        given = [{"Key": t["Key"], "Value": t["Value"]} for t in request["Tags"]]

        def add(tags: list[dict[str, str]]) -> list[dict[str, str]]:
            keys = {t["Key"] for t in given}
            return [t for t in tags if t["Key"] not in keys] + given

        return {"Tags": await self._retag(caller, request["ResourceArn"], "AddTags", add)}

    async def delete_tags(self, request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        validate(self.table, "DeleteTagsInput", request)
        keys = set(request["TagKeys"])
        await self._retag(
            caller,
            request["ResourceArn"],
            "DeleteTags",
            lambda tags: [t for t in tags if t["Key"] not in keys],
        )
        return {}

    async def list_tags(self, request: Mapping[str, Any], caller: Caller) -> dict[str, Any]:
        validate(self.table, "ListTagsInput", request)
        kind, obj = self._tagged(caller, request["ResourceArn"])
        await self._check_read(caller, "get", kind, "ListTags", sagemaker_name(kind, obj))
        tags = _tags(obj)
        start = 0
        if request.get("NextToken"):
            try:
                start = int(str(request["NextToken"]))
            except ValueError:
                raise errors.validation(f"Invalid pagination token: {request['NextToken']}") from None
        size = int(request.get("MaxResults") or _MAX_TAGS)
        response: dict[str, Any] = {"Tags": tags[start : start + size]}
        if start + size < len(tags):
            response["NextToken"] = str(start + size)
        return response

    async def update_endpoint_weights_and_capacities(
        self, request: Mapping[str, Any], caller: Caller
    ) -> dict[str, Any]:
        """New weights and instance counts for variants of the running config, in place (no new
        fleet): ``spec.desiredWeightsAndCapacities``, merged per variant with what an earlier call
        set, which the operator applies (Updating, then InService)."""
        spec = to_spec(self.table, "UpdateEndpointWeightsAndCapacitiesInput", request)
        name = request["EndpointName"]
        endpoint = self._require(ENDPOINT, caller, name)
        arn = caller.account.arn(ENDPOINT, name)
        if describe_endpoint(self.table, endpoint, caller.account)["EndpointStatus"] in _IN_PROGRESS:
            raise errors.validation(f'Cannot update in-progress endpoint "{arn}".')
        current = endpoint.get("spec", {})
        config = self.store.find(ENDPOINT_CONFIG, caller.namespace, current.get("endpointConfigName", ""))
        variants = [
            str(v.get("variantName")) for v in (config or {}).get("spec", {}).get("productionVariants") or ()
        ] or [str(v.get("variantName")) for v in endpoint.get("status", {}).get("productionVariants") or ()]
        requested = spec["desiredWeightsAndCapacities"]
        unknown = [d["variantName"] for d in requested if d["variantName"] not in variants]
        if unknown:
            raise errors.validation(
                f'The variant(s) {", ".join(unknown)} are not present in endpoint "{arn}" '
                f"(its variants: {', '.join(variants)})."
            )
        scaled = {s.get("variantName") for s in current.get("autoScaling") or ()}
        owned = [
            d["variantName"] for d in requested if "desiredInstanceCount" in d and d["variantName"] in scaled
        ]
        if owned:
            raise errors.validation(
                f"DesiredInstanceCount of variant(s) {', '.join(owned)} is set by the endpoint's "
                "autoscaling (spec.autoScaling): change its minInstanceCount/maxInstanceCount instead."
            )
        merged = {d["variantName"]: dict(d) for d in current.get("desiredWeightsAndCapacities") or ()}
        for desired in requested:
            merged.setdefault(desired["variantName"], {}).update(desired)
        patch = {"spec": {"desiredWeightsAndCapacities": list(merged.values())}}
        try:
            updated = await self.writer.patch(
                ENDPOINT, caller.namespace, endpoint["metadata"]["name"], patch, user=caller.user
            )
        except KubeRefusalError as refusal:
            if refusal.status == 404:
                raise errors.not_found(ENDPOINT, caller.account, name) from None
            raise self._refused(
                refusal,
                "UpdateEndpointWeightsAndCapacitiesInput",
                "UpdateEndpointWeightsAndCapacities",
                ENDPOINT,
                caller,
                name,
            ) from None
        self.store.remember(ENDPOINT, updated)
        return {"EndpointArn": arn}


def _tags(obj: Mapping[str, Any]) -> list[dict[str, str]]:
    """``spec.tags`` in botocore's shape (Key, Value), in the order they were added."""
    found = obj.get("spec", {}).get("tags") or ()
    return [
        {"Key": str(t.get("key", "")), "Value": str(t.get("value", ""))}
        for t in found
        if isinstance(t, Mapping)
    ]


__all__ = [
    "KINDS",
    "AllowAll",
    "Authorizer",
    "Caller",
    "ControlApi",
    "KubeRefusalError",
    "Store",
    "Writer",
    "region_of",
]


def _real_time_made_serverless(endpoint: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The variants a new config makes serverless that serve real-time now (SageMaker refuses
    that conversion; serverless -> real-time is allowed)."""
    serving = (endpoint.get("status") or {}).get("productionVariants") or []
    real_time = {v.get("variantName") for v in serving if not v.get("desiredServerlessConfig")}
    wanted = (config.get("spec") or {}).get("productionVariants") or []
    return sorted(
        v["variantName"] for v in wanted if v.get("serverlessConfig") and v.get("variantName") in real_time
    )
