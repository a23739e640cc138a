"""A model handler for AWS's SageMaker Inference Toolkit, written as the toolkit's README shows
(an inference handler, a handler service, a serving entrypoint); nothing in it knows sageport.

The model is a linear function stored as ``model.json`` (``{"coef": [...], "intercept": x}``) in
the model directory: ``/opt/ml/model`` for a single model, ``/opt/ml/models/<name>/model`` for
each model of a multi-model endpoint (Multi Model Server gives it as ``model_dir``).
"""

import json
import os

import numpy as np
from sagemaker_inference import decoder, default_inference_handler, encoder
from sagemaker_inference.default_handler_service import DefaultHandlerService
from sagemaker_inference.transformer import Transformer


class LinearInferenceHandler(default_inference_handler.DefaultInferenceHandler):
    def default_model_fn(self, model_dir, context=None):
        with open(os.path.join(model_dir, "model.json")) as model_file:
            params = json.load(model_file)
        return np.asarray(params["coef"], dtype=float), float(params["intercept"])

    def default_input_fn(self, input_data, content_type, context=None):
        return decoder.decode(input_data, content_type)  # JSON, CSV or NPY

    def default_predict_fn(self, data, model, context=None):
        coef, intercept = model
        return np.atleast_2d(np.asarray(data, dtype=float)) @ coef + intercept

    def default_output_fn(self, prediction, accept, context=None):
        return encoder.encode(prediction, accept)


class HandlerService(DefaultHandlerService):
    """Executed by Multi Model Server: ``initialize`` when a model loads, ``handle`` per request."""

    def __init__(self):
        super().__init__(transformer=Transformer(default_inference_handler=LinearInferenceHandler()))


# MMS runs one worker process per model: one service per process.
_service = HandlerService()


def handle(data, context):
    if data is None:  # MMS calls the entry point once with no data when it loads the model
        _service.initialize(context)
        return None
    return _service.handle(data, context)
