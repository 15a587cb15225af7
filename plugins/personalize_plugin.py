"""Registers the Personalize operators' console links, so the Airflow UI can show them.

Airflow 3 serialises an operator's extra links by class; the API server only rebuilds links whose
classes a provider or a plugin registered.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from personalize.links import ALL_LINKS


class PersonalizePlugin(AirflowPlugin):
    name = "personalize"
    operator_extra_links = [link() for link in ALL_LINKS]
