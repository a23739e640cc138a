"""The model server: SageMaker container contract plus KServe V1/V2 routes."""
