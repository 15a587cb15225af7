"""train_deploy with `gate.evaluation: replay`, end to end with dag.test() on the local service.

The first version deploys on the offline gate (nothing serves yet); the next challenger is left
PENDING and the campaign keeps the champion; without its window's data the run waits; once the
window is imported, a run scores challenger and champion with batch inference jobs on the same
held-out users, decides with the interval rule and deploys; a rerun of that run adopts the batch
jobs (no new job) and adds no history line.
"""

from __future__ import annotations

from datetime import timedelta

from tests.dags import e2e_support as support
from tests.dags.test_pipeline_e2e import START, campaign, day, run
from tests.dags.test_pipeline_e2e import local_aws as local_aws
from tests.dags.test_pipeline_e2e import seeded_pipeline as seeded_pipeline

REPLAY_GATE = {
    "gate.evaluation": "replay",
    "gate.tolerance": "auto",
    "gate.holdout_days": 1,
    "gate.replay_users": 50,
    "gate.replay_resamples": 200,
}


def _batch_jobs(personalize, config) -> list[dict]:
    """This test's batch jobs: the local service is shared by the tests a worker runs."""
    own = f"/{config.solution.name}/"
    jobs = personalize.list_batch_inference_jobs()["batchInferenceJobs"]
    return [j for j in jobs if own in j["solutionVersionArn"]]


def test_replay_defers_then_scores_on_the_same_window_deploys_and_a_rerun_adopts(
    local_aws, s3_bucket, seeded_pipeline, monkeypatch
):
    from include.pipeline.history import history_key, read_history
    from include.pipeline.report import report_prefix

    name = "e2e_replay"
    dags, path, overrides = seeded_pipeline("sqlite", name, users=900, days=5)
    path = support.write_config(
        path.parent, name=name, bucket=s3_bucket, app_conn_id=f"{name}_app", **overrides, **REPLAY_GATE
    )
    dags = support.load_dags(path, monkeypatch)
    config = dags["config"]
    personalize, s3 = local_aws["personalize"], local_aws["s3"]

    def g(task_id: str) -> str:
        return support.in_group(config, task_id)

    def history():
        return read_history(s3, s3_bucket, history_key(config.s3.prefix))

    # 1. Nothing serves yet: the first version deploys on the offline gate.
    run(dags["ingest"], logical_date=None, run_conf={"start": day(0), "end": day(3)})
    _, states = run(dags["train_deploy"], logical_date=None)
    assert states[g("deploy_campaign")] == "success" and states[g("hold_challenger")] == "skipped", states
    champion = campaign(local_aws, config.campaign.name)["solutionVersionArn"]
    assert history()[-1]["replay"]["data_end"] == day(3)

    # 2. New data: the challenger trains on days before day 4 and waits for [day 4, day 5).
    run(dags["ingest"], logical_date=None, run_conf={"start": day(3), "end": day(4)})
    _, states = run(dags["train_deploy"], logical_date=None)
    assert states[g("hold_challenger")] == "success" and states[g("deploy_campaign")] == "skipped", states
    assert states[g("replay_inputs")] == "skipped", states
    pending = history()[-1]
    assert pending["decision"]["verdict"] == "PENDING" and pending["replay"]["window"] == [day(4), day(5)]
    challenger = pending["solution_version_arn"]
    assert challenger != champion
    assert campaign(local_aws, config.campaign.name)["solutionVersionArn"] == champion

    # 3. Its window is not in the dataset yet: the run waits, trains nothing, scores nothing.
    _, states = run(dags["train_deploy"], logical_date=None, run_conf={"force_deploy": False})
    assert states[g("train")] == "skipped" and states[g("replay_inputs")] == "skipped", states
    assert len(history()) == 2 and not _batch_jobs(personalize, config)

    # 4. Day 4 imported: both versions score the same held-out users on it, then the gate decides.
    run(dags["ingest"], logical_date=None, run_conf={"start": day(4), "end": day(5)})
    scoring_run = START + timedelta(days=30)
    _, states = run(dags["train_deploy"], logical_date=scoring_run, run_after=scoring_run)
    assert states[g("train")] == "skipped", states
    assert states[g("replay_batch_jobs[0]")] == states[g("replay_batch_jobs[1]")] == "success", states
    jobs = _batch_jobs(personalize, config)
    assert sorted(j["solutionVersionArn"] for j in jobs) == sorted([challenger, champion])
    decided = history()[-1]
    decision = decided["decision"]
    assert decided["replay_of"] == challenger and decision["evaluation"] == "replay"
    # Deployed as trained: the shrink guard's baseline is what it was trained on, not today's data.
    assert decided["training_data"] == pending["training_data"]
    assert decision["window"] == [day(4), day(5)] and "rule auto" in decision["rule"]
    intervals = decision["replay"]["metrics"]
    low, value, high = (intervals["challenger"][config.gate.metric][i] for i in (1, 0, 2))
    assert low <= value <= high and decision["replay"]["users"] == 50
    # Offline metrics (GetSolutionMetrics) are recorded beside the replay ones.
    assert decided["metrics"] == personalize.get_solution_metrics(solutionVersionArn=challenger)["metrics"]
    serving = campaign(local_aws, config.campaign.name)["solutionVersionArn"]
    assert decision["verdict"] == "ACCEPTED", decision["summary"]
    assert states[g("deploy_campaign")] == "success" and serving == challenger, states
    folder = report_prefix(config.s3.prefix, decided["run_id"])
    report = s3.get_object(Bucket=s3_bucket, Key=f"{folder}/report.md")["Body"].read().decode()
    assert "## Metrics (GetSolutionMetrics)" in report and "## Replay metrics: window" in report
    assert "[" in report.split("## Replay metrics")[1].split("## History")[0]  # intervals shown

    # 5. The same run again (cleared and rerun): the jobs are adopted by name; nothing new anywhere.
    lines = len(history())
    _, states = run(dags["train_deploy"], logical_date=scoring_run, run_after=scoring_run)
    assert states[g("replay_decide")] == "success", states
    assert sorted(j["batchInferenceJobArn"] for j in _batch_jobs(personalize, config)) == sorted(
        j["batchInferenceJobArn"] for j in jobs
    )
    assert len(history()) == lines
    assert campaign(local_aws, config.campaign.name)["solutionVersionArn"] == challenger


def test_replay_deploy_retrain_deploys_a_fresh_version_of_the_accepted_solution(
    local_aws, s3_bucket, seeded_pipeline, monkeypatch
):
    from include.pipeline.history import history_key, read_history

    name = "e2e_retrain"
    _, path, overrides = seeded_pipeline("sqlite", name, users=900, days=5)
    gate = {**REPLAY_GATE, "gate.replay_deploy": "retrain"}
    path = support.write_config(
        path.parent, name=name, bucket=s3_bucket, app_conn_id=f"{name}_app", **overrides, **gate
    )
    dags = support.load_dags(path, monkeypatch)
    config = dags["config"]
    personalize = local_aws["personalize"]

    def g(task_id: str) -> str:
        return support.in_group(config, task_id)

    run(dags["ingest"], logical_date=None, run_conf={"start": day(0), "end": day(3)})
    run(dags["train_deploy"], logical_date=None)
    run(dags["ingest"], logical_date=None, run_conf={"start": day(3), "end": day(4)})
    run(dags["train_deploy"], logical_date=None)
    pending = read_history(local_aws["s3"], s3_bucket, history_key(config.s3.prefix))[-1][
        "solution_version_arn"
    ]
    run(dags["ingest"], logical_date=None, run_conf={"start": day(4), "end": day(5)})
    _, states = run(dags["train_deploy"], logical_date=None)
    assert states[g("retrain")] == "success" and states[g("use_as_trained")] == "skipped", states
    serving = campaign(local_aws, config.campaign.name)["solutionVersionArn"]
    # The accepted solution, trained again on every day (the window included), serves.
    assert serving != pending and serving.rsplit("/", 1)[0] == pending.rsplit("/", 1)[0]
    version = personalize.describe_solution_version(solutionVersionArn=serving)["solutionVersion"]
    assert version["trainingMode"] == "FULL"
    last = read_history(local_aws["s3"], s3_bucket, history_key(config.s3.prefix))[-1]
    assert last["solution_version_arn"] == serving and last["retrained_from"] == pending
    assert last["replay"]["data_end"] == day(5) and last["deployed"] is True
