"""One broken config file stops only its own pipeline: the others' DAGs load, the error names file and key."""

from __future__ import annotations

from pathlib import Path

import yaml

from include.pipeline.check_config import main as check_config
from include.pipeline.config import CONFIG_DIR, CONFIG_DIR_ENV

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


def _pipeline(name: str) -> dict:
    data = yaml.safe_load((CONFIG_DIR / "demo_retail.yaml").read_text(encoding="utf-8"))
    data.update(name=name, dataset_group=name.replace("_", "-"))
    data["s3"]["prefix"] = name
    group = name.replace("_", "-")
    for number, solution in enumerate(data["solutions"]):
        solution["name"] = f"{group}-solution-{number}"
        if "campaign" in solution:
            solution["campaign"]["name"] = f"{group}-campaign-{number}"
    return data


def _config_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "a_good.yaml").write_text(yaml.safe_dump(_pipeline("alpha")), encoding="utf-8")
    broken = _pipeline("beta")
    broken["gate"]["tolerence"] = 0.1  # a typo of one team
    (folder / "b_broken.yaml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    (folder / "c_good.yaml").write_text(yaml.safe_dump(_pipeline("gamma")), encoding="utf-8")
    return folder


def test_a_broken_file_stops_only_its_own_dags_and_the_error_names_file_and_key(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    folder = _config_folder(tmp_path)
    monkeypatch.setenv(CONFIG_DIR_ENV, str(folder))
    bag = DagBag(dag_folder=str(DAGS_FOLDER))

    assert sorted(bag.dags) == sorted(
        f"{name}_{kind}"
        for name in ("alpha", "gamma")
        for kind in ("ingest", "train_deploy", "batch_inference", "erase_users")
    )
    assert len(bag.dags) == 8
    assert len(bag.import_errors) == 1, bag.import_errors
    ((where, message),) = bag.import_errors.items()
    assert where.endswith("personalize_config_errors.py")
    assert f"{folder / 'b_broken.yaml'}: gate.tolerence: unknown key" in message
    assert "a_good.yaml" not in message and "c_good.yaml" not in message


def test_with_every_config_valid_the_error_file_is_silent(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    folder = _config_folder(tmp_path)
    (folder / "b_broken.yaml").unlink()
    monkeypatch.setenv(CONFIG_DIR_ENV, str(folder))
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    assert len(bag.dags) == 8


def test_check_config_reports_each_file_and_fails_on_the_broken_one(tmp_path, capsys):
    folder = _config_folder(tmp_path)
    assert check_config([str(folder)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["ok", "INVALID", "ok"]
    assert "b_broken.yaml: gate.tolerence: unknown key" in lines[1]


def test_every_shipped_config_passes_check_config(capsys):
    assert check_config([str(CONFIG_DIR)]) == 0, capsys.readouterr().out
