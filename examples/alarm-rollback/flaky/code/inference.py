"""A model that fails every third call (HTTP 500 from the model server): the "bad release" of
examples/alarm-rollback. It answers any body with a fixed class otherwise."""

import itertools
import json

_calls = itertools.count(1)


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    return body


def predict_fn(data, model):
    if next(_calls) % 3 == 0:
        raise RuntimeError("flaky model: every third call fails")
    return {"predictions": [0]}


def output_fn(prediction, accept):
    return json.dumps(prediction)
