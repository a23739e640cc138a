"""Stage 3 of examples/serial-pipeline: the sklearn stage's JSON class ids in, a JSON document
naming each species out."""

from __future__ import annotations

import json

SPECIES = ("setosa", "versicolor", "virginica")


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    if content_type.split(";")[0].strip() != "application/json":
        raise ValueError(f"expected application/json, got {content_type}")
    return json.loads(body)


def predict_fn(classes, model):
    return [{"class": int(c), "species": SPECIES[int(c)]} for c in classes]


def output_fn(predictions, accept):
    return json.dumps({"predictions": predictions}), "application/json"
