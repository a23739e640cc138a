"""Assembly, filters and joins (sagemaker-semantics.md §1.5, §1.8), through the pipeline."""

from __future__ import annotations

import gzip

import pytest

from sageport.api.v1alpha1 import TransformJobSpec
from sageport.batch import jsonpath
from sageport.batch.assemble import AssembleWith, DataProcessing, ProcessingError, assemble
from sageport.batch.params import Parameters, resolve
from sageport.batch.pipeline import finish, prepare
from sageport.batch.records import BatchStrategy, SplitType


def spec(**fields: object) -> TransformJobSpec:
    base: dict[str, object] = {
        "modelName": "m",
        "transformInput": {
            "dataSource": {"s3DataSource": {"s3DataType": "S3Prefix", "s3URI": "s3://in/data/"}},
            "contentType": "text/csv",
            "splitType": "Line",
        },
        "transformOutput": {"s3OutputPath": "s3://out/results", "accept": "text/csv", "assembleWith": "Line"},
        "transformResources": {"instanceType": "ml.m5.large", "instanceCount": 1},
    }
    base.update(fields)
    return TransformJobSpec.model_validate(base)


def run(params: Parameters, data: bytes, model: object) -> tuple[list[bytes], bytes]:
    prepared = prepare(data, params)
    bodies = [b.body for b in prepared.batches]
    responses = [model(body) for body in bodies]  # type: ignore[operator]
    return bodies, finish(prepared, responses, params)


def test_assemble_with_none_concatenates_and_line_adds_missing_newlines() -> None:
    assert assemble([b"a", b"b\n", b"c"], AssembleWith.NONE) == b"ab\nc"
    assert assemble([b"a", b"b\n", b"c"], AssembleWith.LINE) == b"a\nb\nc\n"


def test_the_canonical_csv_join_example() -> None:
    """InputFilter $[1:], JoinSource Input, OutputFilter $[0,-1]: `id7,1.0,2.0,3.0,4.0` -> the model
    gets `1.0,2.0,3.0,4.0`, answers `0.93`, the output line is `id7,0.93`."""
    params = resolve(
        spec(dataProcessing={"inputFilter": "$[1:]", "joinSource": "Input", "outputFilter": "$[0,-1]"})
    )
    bodies, output = run(params, b"id7,1.0,2.0,3.0,4.0\nid8,5,6,7,8\n", lambda body: b"0.93\n0.11\n")
    assert bodies == [b"1.0,2.0,3.0,4.0\n5,6,7,8\n"]
    assert output == b"id7,0.93\nid8,0.11\n"


def test_csv_join_appends_the_output_columns() -> None:
    params = resolve(spec(dataProcessing={"joinSource": "Input"}), {"BatchStrategy": "SINGLE_RECORD"})
    assert params.batch_strategy is BatchStrategy.SINGLE_RECORD
    _, output = run(params, b"1,2,3\n", lambda body: b"1")
    assert output == b"1,2,3,1\n"


def jsonlines_spec(**processing: str) -> TransformJobSpec:
    return spec(
        transformInput={
            "dataSource": {"s3DataSource": {"s3DataType": "S3Prefix", "s3URI": "s3://in/data/"}},
            "contentType": "application/jsonlines",
            "splitType": "Line",
        },
        transformOutput={
            "s3OutputPath": "s3://o/",
            "accept": "application/jsonlines",
            "assembleWith": "Line",
        },
        dataProcessing=processing,
    )


def test_json_join_puts_the_output_under_sagemaker_output() -> None:
    params = resolve(jsonlines_spec(joinSource="Input"))
    _, output = run(params, b'{"key":1}\n[1,2]\n', lambda body: b'{"label":1}\n{"label":0}\n')
    assert (
        output
        == b'{"key":1,"SageMakerOutput":{"label":1}}\n{"SageMakerInput":[1,2],"SageMakerOutput":{"label":0}}\n'
    )


def test_json_output_filter_picks_keys() -> None:
    params = resolve(
        jsonlines_spec(inputFilter="$.features", joinSource="Input", outputFilter="$['id','SageMakerOutput']")
    )
    bodies, output = run(params, b'{"id":"a","features":[1,2]}\n', lambda body: b"0.5\n")
    assert bodies == [b"[1,2]\n"]
    assert output == b'{"id":"a","SageMakerOutput":0.5}\n'


def test_a_record_count_mismatch_fails_the_object() -> None:
    params = resolve(spec(dataProcessing={"joinSource": "Input"}))
    with pytest.raises(ProcessingError, match="answered 2 records with 1 lines"):
        run(params, b"1\n2\n", lambda body: b"0\n")


def test_no_data_processing_passes_bytes_through() -> None:
    params = resolve(spec())
    assert not params.processing.active
    bodies, output = run(
        params,
        b"1,2\n3,4\n5,6",
        lambda body: body.replace(b"1,2", b"p1").replace(b"3,4", b"p2").replace(b"5,6", b"p3"),
    )
    assert bodies == [b"1,2\n3,4\n5,6"]
    assert output == b"p1\np2\np3\n"


def test_gzip_objects_are_decompressed_before_splitting() -> None:
    params = resolve(
        spec(
            transformInput={
                "dataSource": {"s3DataSource": {"s3DataType": "S3Prefix", "s3URI": "s3://in/data/"}},
                "contentType": "text/csv",
                "splitType": "Line",
                "compressionType": "Gzip",
            }
        )
    )
    bodies, _ = run(params, gzip.compress(b"1\n2\n"), lambda body: body)
    assert bodies == [b"1\n2\n"]


def test_precedence_job_then_container_then_defaults() -> None:
    defaults = resolve(spec())
    assert (defaults.max_concurrent_transforms, defaults.batch_strategy, defaults.max_payload_in_mb) == (
        1,
        BatchStrategy.MULTI_RECORD,
        6,
    )
    assert (defaults.invocations_timeout_seconds, defaults.invocations_max_retries) == (600, 3)
    offered = {"MaxConcurrentTransforms": 8, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 2}
    container = resolve(spec(), offered)
    assert (container.max_concurrent_transforms, container.batch_strategy, container.max_payload_in_mb) == (
        8,
        BatchStrategy.SINGLE_RECORD,
        2,
    )
    job = resolve(spec(maxConcurrentTransforms=2, batchStrategy="MultiRecord", maxPayloadInMB=1), offered)
    assert (job.max_concurrent_transforms, job.batch_strategy, job.max_payload_in_mb) == (
        2,
        BatchStrategy.MULTI_RECORD,
        1,
    )
    assert resolve(spec(maxConcurrentTransforms=0), offered).max_concurrent_transforms == 8
    assert resolve(spec()).split_type is SplitType.LINE


def test_filters_need_csv_or_json() -> None:
    with pytest.raises(ProcessingError, match="ContentType"):
        DataProcessing.of("$[1:]", None, None, "application/x-image", "text/csv")
    with pytest.raises(ProcessingError, match="Accept equal to ContentType"):
        DataProcessing.of(None, None, "Input", "text/csv", "application/json")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("$", [1, 2], [1, 2]),
        ("$[1]", ["a", "b", "c"], "b"),
        ("$[-1]", ["a", "b", "c"], "c"),
        ("$[0,2]", ["a", "b", "c"], ["a", "c"]),
        ("$[1:]", ["a", "b", "c"], ["b", "c"]),
        ("$[:2]", ["a", "b", "c"], ["a", "b"]),
        ("$[0,5:]", list("abcdefg"), ["a", "f", "g"]),
        ("$[1:3]", list("abcd"), ["b", "c"]),  # slice end exclusive (Jayway), documented
        ("$.id", {"id": 3}, 3),
        ("$.id.*", {"id": {"a": 1, "b": 2}}, [1, 2]),
        ("$['id','x']", {"id": 1, "x": 2, "y": 3}, {"id": 1, "x": 2}),
        ("$.f.['a','b']", {"f": {"a": 1, "b": 2, "c": 3}}, {"a": 1, "b": 2}),
    ],
)
def test_jsonpath_subset(path: str, value: object, expected: object) -> None:
    assert jsonpath.parse(path).select(value) == expected


@pytest.mark.parametrize("path", ["id", "$.f.['a','b.c']", "$[x]", "$[1", "$..a"])
def test_jsonpath_outside_the_subset_is_refused(path: str) -> None:
    with pytest.raises(jsonpath.JsonPathError):
        jsonpath.parse(path)


def test_output_filter_index_outside_the_record_is_an_error() -> None:
    params = resolve(spec(dataProcessing={"outputFilter": "$[3]"}))
    with pytest.raises(ProcessingError, match="index 3"):
        run(params, b"1\n", lambda body: b"0.5")
