"""KEDA's external scaler protocol (``externalscaler.proto`` of kedacore/keda), built at import.

The messages are declared here as a descriptor instead of generated ``_pb2`` modules, so no
protoc step and no generated file pinned to one protobuf release. Field names and numbers are
the proto's; the service is ``externalscaler.ExternalScaler``.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "externalscaler.ExternalScaler"
_PACKAGE = "externalscaler"

_F = descriptor_pb2.FieldDescriptorProto
_STRING, _BOOL, _DOUBLE, _INT64, _MESSAGE = (
    _F.TYPE_STRING,
    _F.TYPE_BOOL,
    _F.TYPE_DOUBLE,
    _F.TYPE_INT64,
    _F.TYPE_MESSAGE,
)
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# message -> [(field, number, type, label, message type)]
_MESSAGES: dict[str, list[tuple[str, int, int, int, str | None]]] = {
    "ScaledObjectRef": [
        ("name", 1, _STRING, _OPTIONAL, None),
        ("namespace", 2, _STRING, _OPTIONAL, None),
        ("scalerMetadata", 3, _MESSAGE, _REPEATED, ".externalscaler.ScaledObjectRef.ScalerMetadataEntry"),
    ],
    "IsActiveResponse": [("result", 1, _BOOL, _OPTIONAL, None)],
    "GetMetricSpecResponse": [("metricSpecs", 1, _MESSAGE, _REPEATED, ".externalscaler.MetricSpec")],
    "MetricSpec": [
        ("metricName", 1, _STRING, _OPTIONAL, None),
        ("targetSize", 2, _INT64, _OPTIONAL, None),
        ("targetSizeFloat", 3, _DOUBLE, _OPTIONAL, None),
    ],
    "GetMetricsRequest": [
        ("scaledObjectRef", 1, _MESSAGE, _OPTIONAL, ".externalscaler.ScaledObjectRef"),
        ("metricName", 2, _STRING, _OPTIONAL, None),
    ],
    "GetMetricsResponse": [("metricValues", 1, _MESSAGE, _REPEATED, ".externalscaler.MetricValue")],
    "MetricValue": [
        ("metricName", 1, _STRING, _OPTIONAL, None),
        ("metricValue", 2, _INT64, _OPTIONAL, None),
        ("metricValueFloat", 3, _DOUBLE, _OPTIONAL, None),
    ],
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name="externalscaler.proto", package=_PACKAGE, syntax="proto3")
    for name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=name)
        for field, number, kind, label, type_name in fields:
            added = message.field.add(name=field, number=number, type=kind, label=label, json_name=field)
            if type_name is not None:
                added.type_name = type_name
        if name == "ScaledObjectRef":  # map<string, string> scalerMetadata
            entry = message.nested_type.add(name="ScalerMetadataEntry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_STRING, label=_OPTIONAL, json_name="key")
            entry.field.add(name="value", number=2, type=_STRING, label=_OPTIONAL, json_name="value")
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


ScaledObjectRef = _message("ScaledObjectRef")
IsActiveResponse = _message("IsActiveResponse")
GetMetricSpecResponse = _message("GetMetricSpecResponse")
MetricSpec = _message("MetricSpec")
GetMetricsRequest = _message("GetMetricsRequest")
GetMetricsResponse = _message("GetMetricsResponse")
MetricValue = _message("MetricValue")
