"""The plugin registers the console links with Airflow (the UI side is tested with dag.test())."""

from __future__ import annotations

from personalize.links import (
    PersonalizeCampaignLink,
    PersonalizeDatasetGroupLink,
    PersonalizeSolutionVersionLink,
)

LINK_CLASSES = {PersonalizeDatasetGroupLink, PersonalizeSolutionVersionLink, PersonalizeCampaignLink}


def qualified(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_plugin_loads_from_the_plugins_folder_and_registers_every_console_link():
    from airflow import plugins_manager

    registered = {qualified(type(link)) for link in plugins_manager.get_operator_extra_links()}
    assert {qualified(cls) for cls in LINK_CLASSES} <= registered
    assert not {
        path: error for path, error in plugins_manager.get_import_errors().items() if "personalize" in path
    }
    names = [info["name"] for info in plugins_manager.get_plugin_info()]
    assert "personalize" in names
