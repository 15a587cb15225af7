"""The Airflow AWS connection that points every client the pipeline makes at the local services.

One place for the demo, `make ui`'s stack and the tests: boto3 reaches the local Personalize
service (control plane, runtime, events) and moto's S3 through `service_config` endpoint URLs,
so the DAG code stays the code that runs against AWS.
"""

from __future__ import annotations

LOCAL_REGION = "us-east-1"


def aws_connection_extra(personalize_url: str, s3_url: str, region: str = LOCAL_REGION) -> dict:
    """The connection's `extra`: region and one endpoint URL per service."""
    services = {
        "personalize": {"endpoint_url": personalize_url},
        "personalize-runtime": {"endpoint_url": personalize_url},
        "personalize-events": {"endpoint_url": personalize_url},
        "s3": {"endpoint_url": s3_url},
    }
    return {"region_name": region, "service_config": services}


def aws_connection(personalize_url: str, s3_url: str, region: str = LOCAL_REGION) -> dict:
    """The whole connection, as an `AIRFLOW_CONN_*` JSON value holds it."""
    return {"conn_type": "aws", "extra": aws_connection_extra(personalize_url, s3_url, region)}
