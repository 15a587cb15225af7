# Two targets. `production` is Airflow 3.3.2 plus what the DAGs, the provider layer and the pipeline
# need on a real deployment (requirements.txt): build it with `docker build --target production .`.
# `local` adds the local stand-ins (requirements-local.txt: moto's S3 server, the local Personalize
# service's training engine); every service of docker-compose.yaml runs it. Project code is not
# baked in: compose mounts dags/, plugins/ and include/, so edits show up without a rebuild.
FROM apache/airflow:3.3.2-python3.11 AS production

COPY requirements.txt constraints.txt /opt/personalize-pipeline/
# Our constraints file is the only one that counts (it pins the exact set the tests ran against).
RUN PIP_CONSTRAINT= pip install --no-cache-dir \
        -r /opt/personalize-pipeline/requirements.txt \
        -c /opt/personalize-pipeline/constraints.txt

FROM production AS local

COPY requirements-local.txt /opt/personalize-pipeline/
RUN PIP_CONSTRAINT= pip install --no-cache-dir \
        -r /opt/personalize-pipeline/requirements-local.txt \
        -c /opt/personalize-pipeline/constraints.txt

# The local Personalize service's state volume: a named volume copies this folder's owner on first
# use, and group 0 write access lets any AIRFLOW_UID (compose runs as "${AIRFLOW_UID}:0") write it.
USER root
RUN mkdir -p /state && chown airflow:0 /state && chmod 2775 /state
USER airflow
