from __future__ import annotations

import botocore.eventstream
import botocore.session
from botocore.parsers import EventStreamJSONParser

from sageport.net import eventstream


def _botocore_events(data: bytes) -> list[object]:
    buffer = botocore.eventstream.EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def _response_stream_shape():  # type: ignore[no-untyped-def]
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    return model.shape_for("ResponseStream")


def test_payload_part_decodes_in_botocore() -> None:
    data = eventstream.payload_part(b"hello") + eventstream.payload_part(b"")
    messages = _botocore_events(data)
    assert len(messages) == 2
    parsed = EventStreamJSONParser().parse(messages[0].to_response_dict(), _response_stream_shape())
    assert parsed == {"PayloadPart": {"Bytes": b"hello"}}


def test_exception_frames_carry_code_and_message() -> None:
    for frame, code in (
        (eventstream.model_stream_error("late", "ModelInvocationTimeExceeded"), "ModelStreamError"),
        (eventstream.internal_stream_failure("oops"), "InternalStreamFailure"),
    ):
        (message,) = _botocore_events(frame)
        response = message.to_response_dict()
        assert response["headers"][":message-type"] == "exception"
        assert response["headers"][":exception-type"] == code


def test_decode_round_trip() -> None:
    data = eventstream.payload_part(b"a" * 1000) + eventstream.model_stream_error("m", "StreamBroken")
    frames = eventstream.decode_frames(data)
    assert frames[0] == (
        {":event-type": "PayloadPart", ":content-type": "application/octet-stream", ":message-type": "event"},
        b"a" * 1000,
    )
    assert frames[1][0][":exception-type"] == "ModelStreamError"
