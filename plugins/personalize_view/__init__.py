"""The Personalize view in the Airflow UI: a FastAPI app the API server mounts (see app.py)."""
