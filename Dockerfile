# The image every service of docker-compose.yaml runs: Airflow 3.3.2 plus this project's pinned
# requirements (the Amazon and Postgres providers, moto's S3 server, the local service's training
# engine). Project code is not baked in: compose mounts dags/, plugins/ and include/, so edits show
# up without a rebuild.
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt constraints.txt /opt/personalize-pipeline/
# Our constraints file is the only one that counts (it pins the exact set the tests ran against).
RUN PIP_CONSTRAINT= pip install --no-cache-dir \
        -r /opt/personalize-pipeline/requirements.txt \
        -c /opt/personalize-pipeline/constraints.txt

# The local Personalize service's state volume: a named volume copies this folder's owner on first
# use, and group 0 write access lets any AIRFLOW_UID (compose runs as "${AIRFLOW_UID}:0") write it.
USER root
RUN mkdir -p /state && chown airflow:0 /state && chmod 2775 /state
USER airflow
