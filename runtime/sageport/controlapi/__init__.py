"""The SageMaker control-plane API (awsJson 1.1, ``X-Amz-Target: SageMaker.<Operation>``) served by
the gateway: Models, EndpointConfigs and Endpoints read from a watch cache of the sageport.io
objects and written through the Kubernetes API, so kubectl, Argo CD and boto3 see one truth.

Pure modules: :mod:`names` (object names, ARNs, ACK field names), :mod:`shapes` (botocore's
service model), :mod:`translate` (requests to objects, objects to responses, errors),
:mod:`service` (the operations, against a store and a writer it is handed). The Kubernetes shell
is :mod:`kube`.
"""
