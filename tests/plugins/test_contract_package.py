"""The contract package is a library imported by name, never run as a plugin file by Airflow."""

from __future__ import annotations

import sys


def test_plugin_manager_skips_the_contract_package():
    from airflow import plugins_manager

    assert "personalize" in [info["name"] for info in plugins_manager.get_plugin_info()]
    # The plugin manager registers each file it runs under its bare name (metrics, data_rules, ...).
    assert not {"data_rules", "filter_grammar", "recipes", "names"} & set(sys.modules)
    import personalize_contract.data_rules

    assert personalize_contract.data_rules.CORE_DATASET_TYPES == ("INTERACTIONS", "ITEMS", "USERS")
