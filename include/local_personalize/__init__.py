"""A local Amazon Personalize: the real wire protocols on loopback, backed by a training engine.

    python -m include.local_personalize serve --host 127.0.0.1 --port 8765 --state-dir .personalize

boto3 reaches it with only `endpoint_url` (or AWS_ENDPOINT_URL_PERSONALIZE / _RUNTIME / _EVENTS)
pointing at that one URL. Layout, as moto splits a service: `server` (wire format only), `models`
(resources and rules: `PersonalizeBackend`, joined from `backend/`, one module per resource family),
`store` (SQLite state), `datasets` (import files and records), `worker` (background status
transitions and jobs), `shapes` (botocore's service models as the wire rules), `engine` (training,
behind `engine.api`), `filters` (evaluates filter expressions; their grammar is Personalize's
contract, in `personalize_contract.filter_grammar`).
"""
