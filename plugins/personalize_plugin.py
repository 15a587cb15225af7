"""Registers the Personalize provider's pieces with Airflow.

- The operators' console links: Airflow 3 serialises an operator's extra links by class; the API
  server only rebuilds links whose classes a provider or a plugin registered.
- The Personalize view (personalize_view, a package of its own: it reads this project's pipeline
  configs and history, which the reusable provider layer `personalize` must not import): a FastAPI
  app the API server mounts at /personalize, shown as the nav entry "Personalize" and as a "Personalize" tab on every DAG (the tab says when a DAG
  is not a pipeline's).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from personalize.links import ALL_LINKS
from personalize_view.app import URL_PREFIX, create_app

# Relative hrefs (no leading slash): the UI resolves them against its base URL, so the view also
# works under a reverse proxy's path prefix. {DAG_ID} is filled in by the UI for a DAG tab.
EXTERNAL_VIEWS = [
    {"name": "Personalize", "href": "personalize/", "destination": "nav", "url_route": "personalize"},
    {
        "name": "Personalize",
        "href": "personalize/dags/{DAG_ID}",
        "destination": "dag",
        "url_route": "personalize-dag",
    },
]


class PersonalizePlugin(AirflowPlugin):
    name = "personalize"
    operator_extra_links = [link() for link in ALL_LINKS]
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Personalize view"}]
    external_views = EXTERNAL_VIEWS
