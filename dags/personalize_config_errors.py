"""Shows every invalid pipeline config in include/config/ as this file's DAG import error.

Airflow records import errors per DAG file, and a file that raises loses all its DAGs. So the DAGs
of the valid configs are built by personalize_pipelines.py, which skips broken files, and this file
builds no DAG: it only raises, naming each broken config file and dotted key, so the Airflow UI's
"Dag Import Errors" banner shows what to fix while every other pipeline keeps running.
"""

from __future__ import annotations

from include.pipeline.config import ConfigError, load_configs_isolated

_errors = load_configs_isolated().errors
if _errors:
    raise ConfigError(
        f"{len(_errors)} pipeline config file(s) are invalid; their DAGs are not built "
        "(`make check-config` shows the same):\n" + "\n".join(_errors.values())
    )
