"""train_deploy with `gate.evaluation: replay`, end to end with dag.test() on the local service.

The first version deploys on the offline gate (nothing serves yet); the next challenger is left
PENDING and the campaign keeps the champion; without its window's data the run waits; once the
window is imported, a run scores challenger and champion with batch inference jobs on the same
held-out users, decides with the interval rule and deploys; a rerun of that run adopts the batch
jobs (no new job) and adds no history line. Then two replay solutions in one config, one with a
popularity baseline scored by a job of its own, the other batch only and retrained once accepted.
"""

from __future__ import annotations

import json
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
    """This test's batch jobs, by their names (each starts with the judged solution's name): the
    local service is shared by the tests a worker runs."""
    own = tuple(f"{entry.name}-replay-" for entry in config.solutions)
    jobs = personalize.list_batch_inference_jobs()["batchInferenceJobs"]
    return [j for j in jobs if j["jobName"].startswith(own)]


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


GROUP = "e2e-replay2"
UP, CLICKS = f"{GROUP}-up", f"{GROUP}-clicks"
REPLAY = {"evaluation": "replay", "tolerance": "auto", "holdout_days": 1, "replay_users": 50,
          "replay_resamples": 200, "metric": "precision_at_25", "thresholds": {}}  # fmt: skip
TWO_SOLUTIONS = [
    # Real time, judged against its champion and a popularity baseline scored on the same window.
    {"name": UP, "recipe": "aws-user-personalization", "campaign": {"name": f"{GROUP}-home"},
     "gate": {**REPLAY, "baseline": "popularity-count", "min_lift": 1.1}},
    # Batch only, on clicks (other held-out users), and retrained on every day once accepted.
    {"name": CLICKS, "recipe": "aws-user-personalization", "event_type": "click", "batch": {"num_results": 25},
     "gate": {**REPLAY, "replay_deploy": "retrain"}},
]  # fmt: skip


def test_two_replay_solutions_score_on_the_same_window_each_in_its_own_jobs_with_a_baseline(
    local_aws, s3_bucket, seeded_pipeline, monkeypatch
):
    """Each solution's challenger waits, then is scored on the same window with its own held-out
    users, folder and batch jobs: the campaign-served one against its champion and the popularity
    baseline trained with it (a third job; the baseline rule rejects it), the batch-only one against
    its champion, accepted, then retrained (replay_deploy: retrain). A rerun of the scoring run
    adopts every job and the retraining."""
    from include.pipeline.history import read_history, solution_history_key

    name = "e2e_replay2"
    _, path, overrides = seeded_pipeline("sqlite", name, users=900, days=5)
    path = support.write_config(
        path.parent, name=name, bucket=s3_bucket, app_conn_id=f"{name}_app", solutions=TWO_SOLUTIONS,
        **overrides,
    )  # fmt: skip
    dags = support.load_dags(path, monkeypatch)
    config = dags["config"]
    personalize, s3 = local_aws["personalize"], local_aws["s3"]

    def history(solution: str) -> list[dict]:
        return read_history(s3, s3_bucket, solution_history_key(config, solution))

    # 1. First versions: the offline gate (nothing to compare with); the campaign and batch champions.
    run(dags["ingest"], logical_date=None, run_conf={"start": day(0), "end": day(3)})
    _, states = run(dags["train_deploy"], logical_date=None)
    assert states[f"{UP}.deploy_campaign"] == states[f"{CLICKS}.accept_batch"] == "success", states
    assert states["train_baseline"] == "success", states
    champions = {s: history(s)[-1]["solution_version_arn"] for s in (UP, CLICKS)}

    # 2. New data: both challengers wait for [day 4, day 5); the baseline trains on the same days.
    run(dags["ingest"], logical_date=None, run_conf={"start": day(3), "end": day(4)})
    _, states = run(dags["train_deploy"], logical_date=None)
    assert states[f"{UP}.hold_challenger"] == states[f"{CLICKS}.hold_challenger"] == "success", states
    pending = {s: history(s)[-1] for s in (UP, CLICKS)}
    assert all(p["decision"]["verdict"] == "PENDING" for p in pending.values())
    assert all(p["replay"]["window"] == [day(4), day(5)] for p in pending.values())
    baseline = pending[UP]["baseline_solution_version_arn"]
    baselines = personalize.list_solution_versions(solutionArn=baseline.rsplit("/", 1)[0])["solutionVersions"]
    newest = max(baselines, key=lambda v: v["creationDateTime"])["solutionVersionArn"]
    assert len(baselines) == 2 and baseline == newest  # trained in this run, on the challengers' days
    assert pending[CLICKS]["baseline_solution_version_arn"] is None

    # 3. Day 4 imported: each solution scores its models on the window, in its own folder and jobs.
    run(dags["ingest"], logical_date=None, run_conf={"start": day(4), "end": day(5)})
    scoring_run = START + timedelta(days=30)
    _, states = run(dags["train_deploy"], logical_date=scoring_run, run_after=scoring_run)
    assert states["train_baseline"] == "skipped", states  # no replay solution trains this run
    jobs = _batch_jobs(personalize, config)
    scored = {
        s: sorted(j["solutionVersionArn"] for j in jobs if j["jobName"].startswith(s + "-"))
        for s in (UP, CLICKS)
    }
    up_challenger, clicks_challenger = (pending[s]["solution_version_arn"] for s in (UP, CLICKS))
    assert scored[UP] == sorted([up_challenger, champions[UP], baseline]), jobs
    assert scored[CLICKS] == sorted([clicks_challenger, champions[CLICKS]]), jobs
    held = {
        s: json.loads(
            s3.get_object(Bucket=s3_bucket, Key=config.s3.key(f"replay/{s}/{day(4)}_{day(5)}/held_out.json"))[
                "Body"
            ].read()
        )
        for s in (UP, CLICKS)
    }
    # Clicks only: fewer window events, so other held-out users than the solution on every event.
    assert held[CLICKS]["window_events"] < held[UP]["window_events"]

    up = history(UP)[-1]
    decision = up["decision"]
    assert up["replay_of"] == up_challenger and decision["window"] == [day(4), day(5)]
    assert "rule auto" in decision["rule"] and "baseline lift 1.1x: challenger / baseline" in decision["rule"]
    value, low, high = decision["replay"]["metrics"]["baseline"][
        "precision_at_25"
    ]  # as_list: value, low, high
    assert low <= value <= high and decision["baseline"]["precision_at_25"] == value
    assert up["baseline_solution_version_arn"] == baseline
    assert up["baseline_metrics"] == personalize.get_solution_metrics(solutionVersionArn=baseline)["metrics"]
    # On these few days the popularity baseline does as well as the challenger (and its champion):
    # the baseline rule alone rejects, and the campaign keeps its champion.
    challenger_value = decision["challenger"]["precision_at_25"]
    assert decision["verdict"] == "REJECTED" and "not shown worse" in decision["rule"], decision["summary"]
    assert decision["failures"] == [f"precision_at_25 {challenger_value:.4f} < 1.1 x baseline {value:.4f}"]
    assert states[f"{UP}.keep_champion"] == "success" and states[f"{UP}.deploy_campaign"] == "skipped"
    assert campaign(local_aws, f"{GROUP}-home")["solutionVersionArn"] == champions[UP]
    report_key = up_report(config, up["run_id"])
    report = s3.get_object(Bucket=s3_bucket, Key=report_key)["Body"].read().decode()
    assert "| metric | challenger | champion | baseline | challenger - champion |" in report

    # The batch-only one, accepted, is trained again on every day (the window too) and becomes its champion.
    clicks = history(CLICKS)[-1]
    assert clicks["replay_of"] == clicks_challenger and clicks["decision"]["verdict"] == "ACCEPTED", clicks
    assert states[f"{CLICKS}.retrain"] == "success" and states[f"{CLICKS}.accept_batch"] == "success"
    retrained = clicks["solution_version_arn"]
    assert (
        retrained != clicks_challenger and retrained.rsplit("/", 1)[0] == clicks_challenger.rsplit("/", 1)[0]
    )
    version = personalize.describe_solution_version(solutionVersionArn=retrained)["solutionVersion"]
    assert version["trainingMode"] == "FULL"
    assert clicks["retrained_from"] == clicks_challenger and clicks["replay"]["data_end"] == day(5)
    assert clicks["deployed"] is True

    # 4. The same run again: every batch job and the retraining adopted by name, no new line anywhere.
    lines = {s: len(history(s)) for s in (UP, CLICKS)}
    versions = len(
        personalize.list_solution_versions(solutionArn=retrained.rsplit("/", 1)[0])["solutionVersions"]
    )
    _, states = run(dags["train_deploy"], logical_date=scoring_run, run_after=scoring_run)
    assert states[f"{UP}.replay_decide"] == states[f"{CLICKS}.replay_decide"] == "success", states
    assert sorted(j["batchInferenceJobArn"] for j in _batch_jobs(personalize, config)) == sorted(
        j["batchInferenceJobArn"] for j in jobs
    )
    assert {s: len(history(s)) for s in (UP, CLICKS)} == lines
    assert (
        len(personalize.list_solution_versions(solutionArn=retrained.rsplit("/", 1)[0])["solutionVersions"])
        == versions
    )
    assert campaign(local_aws, f"{GROUP}-home")["solutionVersionArn"] == champions[UP]


def up_report(config, run_id: str) -> str:
    from include.pipeline.report import report_prefix

    return f"{report_prefix(config.s3.prefix, run_id)}/report.md"
