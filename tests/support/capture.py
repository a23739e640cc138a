"""What examples/data-capture's Endpoint status says about its capture (every level asserts it)."""

from __future__ import annotations

from typing import Any

EXAMPLE_CAPTURE_SUMMARY: dict[str, Any] = {
    "enableCapture": True,
    "captureStatus": "Started",
    "currentSamplingPercentage": 100,
    "destinationS3URI": "s3://sageport-models/capture",
    "captureOptions": [{"captureMode": "Input"}, {"captureMode": "Output"}],
    "captureContentTypeHeader": {
        "csvContentTypes": ["text/csv"],
        "jsonContentTypes": ["application/json"],
    },
}
