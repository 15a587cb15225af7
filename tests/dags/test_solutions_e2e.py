"""Several solutions on one dataset group, end to end with dag.test() (local service, moto S3, SQLite).

Three solutions train in one train_deploy run: similar-items on a campaign (smoke test by item),
a popularity-count challenger that the baseline gate rejects (a lift of 1 over popularity: it learned
nothing; its campaign is never created), and personalized-ranking served by batch only (no campaign
ever exists for it, yet batch inference writes its rankings). Rerunning creates no new resource, and
every resource carries the config's tags.
"""

from __future__ import annotations

import json
from datetime import timedelta

from tests.dags import e2e_support as support
from tests.dags.test_pipeline_e2e import START, day, local_aws, run, seeded_pipeline  # noqa: F401 (fixtures)

NAME = "e2e_multi"
GROUP = NAME.replace("_", "-")
SIMILAR, POPULAR, RANKING = f"{GROUP}-similar", f"{GROUP}-popular", f"{GROUP}-ranking"
NO_THRESHOLDS = {"metric": "precision_at_25", "thresholds": {}}
SOLUTIONS = [
    {
        "name": SIMILAR,
        "recipe": "aws-similar-items",
        "campaign": {"name": f"{GROUP}-similar"},
        "gate": NO_THRESHOLDS,
    },
    {
        "name": POPULAR,
        "recipe": "aws-popularity-count",
        "campaign": {"name": f"{GROUP}-popular"},
        "gate": {**NO_THRESHOLDS, "baseline": "popularity-count", "min_lift": 1.2},
    },
    {
        "name": RANKING,
        "recipe": "aws-personalized-ranking",
        "batch": {"num_results": 20},
        "gate": NO_THRESHOLDS,
    },
]
TAGS = {"team": "ml-platform", "cost-center": "42"}


def _resources(personalize, group_name: str) -> dict[str, list[str]]:
    """Every resource of the dataset group, by kind, through the list calls."""
    group = next(g for g in personalize.list_dataset_groups()["datasetGroups"] if g["name"] == group_name)
    group_arn = group["datasetGroupArn"]
    datasets = [d["datasetArn"] for d in personalize.list_datasets(datasetGroupArn=group_arn)["datasets"]]
    solutions = [s["solutionArn"] for s in personalize.list_solutions(datasetGroupArn=group_arn)["solutions"]]
    versions = [
        v["solutionVersionArn"]
        for arn in solutions
        for v in personalize.list_solution_versions(solutionArn=arn)["solutionVersions"]
    ]
    campaigns = [
        c["campaignArn"]
        for arn in solutions
        for c in personalize.list_campaigns(solutionArn=arn)["campaigns"]
    ]
    return {
        "dataset_group": [group_arn],
        "datasets": datasets,
        "import_jobs": [
            j["datasetImportJobArn"]
            for arn in datasets
            for j in personalize.list_dataset_import_jobs(datasetArn=arn)["datasetImportJobs"]
        ],
        "solutions": solutions,
        "solution_versions": versions,
        "campaigns": campaigns,
        "filters": [f["filterArn"] for f in personalize.list_filters(datasetGroupArn=group_arn)["Filters"]],
        "event_trackers": [
            t["eventTrackerArn"]
            for t in personalize.list_event_trackers(datasetGroupArn=group_arn)["eventTrackers"]
        ],
        "batch_jobs": [
            j["batchInferenceJobArn"]
            for j in personalize.list_batch_inference_jobs()["batchInferenceJobs"]
            if j["solutionVersionArn"].rsplit("/", 1)[0] in solutions
        ],
    }


def test_three_solutions_train_one_rejected_by_the_baseline_one_batch_only(
    local_aws,  # noqa: F811 (the fixture imported above)
    s3_bucket,
    seeded_pipeline,  # noqa: F811
    monkeypatch,
):
    from include.pipeline import solution_batch
    from include.pipeline.history import history_key, read_history

    dags, path, overrides = seeded_pipeline("sqlite", NAME, users=600, days=4)
    path = support.write_config(
        path.parent, name=NAME, bucket=s3_bucket, app_conn_id=f"{NAME}_app", solutions=SOLUTIONS,
        resource_tags=TAGS, **{"tasks.training_pool": "personalize_training"}, **overrides,
    )  # fmt: skip
    dags = support.load_dags(path, monkeypatch)
    config = dags["config"]
    personalize, s3 = local_aws["personalize"], local_aws["s3"]

    run(dags["ingest"], logical_date=None, run_conf={"start": day(0), "end": day(4)})
    _, states = run(dags["train_deploy"], logical_date=None)
    for solution in (SIMILAR, POPULAR, RANKING):
        assert states[f"{solution}.train"] == "success", states
    assert states["train_baseline"] == "success", states
    assert states[f"{SIMILAR}.deploy_campaign"] == "success" and states[f"{SIMILAR}.smoke_test"] == "success"
    assert (
        states[f"{POPULAR}.keep_champion"] == "success" and states[f"{POPULAR}.deploy_campaign"] == "skipped"
    )
    assert states[f"{RANKING}.accept_batch"] == "success", states

    campaigns = {c["name"]: c for c in personalize.list_campaigns()["campaigns"]}
    assert f"{GROUP}-similar" in campaigns and f"{GROUP}-popular" not in campaigns
    similar = personalize.describe_campaign(campaignArn=campaigns[f"{GROUP}-similar"]["campaignArn"])[
        "campaign"
    ]
    assert similar["status"] == "ACTIVE"
    item = support_item(config)
    recs = local_aws["runtime"].get_recommendations(campaignArn=similar["campaignArn"], itemId=item)
    assert recs["itemList"] and item not in [r["itemId"] for r in recs["itemList"]]

    histories = {
        solution: read_history(s3, s3_bucket, history_key(config.s3.prefix, None if i == 0 else solution))
        for i, solution in enumerate((SIMILAR, POPULAR, RANKING))
    }
    rejected = histories[POPULAR][-1]
    assert rejected["decision"]["verdict"] == "REJECTED" and rejected["deployed"] is False
    assert rejected["decision"]["lift"] < 1.2 and "min_lift 1.2x" in rejected["reason"]
    assert rejected["baseline_metrics"]["precision_at_25"] > 0
    assert histories[RANKING][-1]["deployed"] is True and histories[SIMILAR][-1]["deployed"] is True
    report = s3.get_object(Bucket=s3_bucket, Key=f"{config.s3.prefix}/history/overview.png")["Body"].read()
    assert report.startswith(b"\x89PNG")

    # Batch only: the ranking solution's accepted version scores users with no campaign anywhere.
    batch_run, states = run(dags["batch_inference"], logical_date=START + timedelta(days=10))
    assert states[f"{RANKING}.publish_output"] == "success", states
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=f"{config.s3.prefix}/batch/{RANKING}/")[
            "Contents"
        ]
    ]
    output = [k for k in keys if "/output/" in k]
    assert output, keys
    lines = [
        json.loads(line)
        for k in output
        for line in s3.get_object(Bucket=s3_bucket, Key=k)["Body"].read().splitlines()
        if line.strip()
    ]
    assert lines and all(line["output"]["recommendedItems"] for line in lines[:5]), lines[:2]
    version = histories[RANKING][-1]["solution_version_arn"]
    assert not personalize.list_campaigns(solutionArn=version.rsplit("/", 1)[0])["campaigns"]

    # Rerunning creates nothing new: no new data, so nothing trains (the baseline neither); a
    # cleared batch run names the same job (the operator adopts it) and input.
    before = _resources(personalize, config.dataset_group)
    _, states = run(dags["train_deploy"], logical_date=None)
    assert all(states[f"{s}.train"] == "skipped" for s in (SIMILAR, POPULAR, RANKING)), states
    assert states["train_baseline"] == "skipped", states
    assert _resources(personalize, config.dataset_group) == before
    (job_arn,) = before["batch_jobs"]
    again = solution_batch.prepare(config, RANKING, _ensured(personalize, config), batch_run.run_id)
    assert job_arn.endswith("/" + again["job_name"]) and again["solution_version_arn"] == version

    # Every resource the pipeline created carries the config's tags and pipeline=<name>.
    wanted = {**TAGS, "pipeline": NAME}
    for kind, arns in before.items():
        assert arns, f"no {kind} to check"
        for arn in arns:
            tags = {
                t["tagKey"]: t["tagValue"]
                for t in personalize.list_tags_for_resource(resourceArn=arn)["tags"]
            }
            assert wanted.items() <= tags.items(), (kind, arn, tags)


def _ensured(personalize, config) -> dict:
    """What ensure_resources returns, as far as prepare reads it (the filter ARNs by name)."""
    group = next(
        g for g in personalize.list_dataset_groups()["datasetGroups"] if g["name"] == config.dataset_group
    )
    filters = personalize.list_filters(datasetGroupArn=group["datasetGroupArn"])["Filters"]
    return {"filter_arns": {f["name"]: f["filterArn"] for f in filters}}


def support_item(config) -> str:
    from include.pipeline.extract_sql import most_active

    return most_active(config, "ITEM_ID", 1)[0]


def test_a_failing_solution_blocks_no_other_and_the_run_names_it(
    local_aws,  # noqa: F811 (the fixture imported above)
    s3_bucket,
    seeded_pipeline,  # noqa: F811
    monkeypatch,
):
    name, group = "e2e_fail", "e2e-fail"
    broken = f"{group}-broken"
    solutions = [
        {"name": f"{group}-similar", "recipe": "aws-similar-items", "campaign": {"name": f"{group}-similar"},
         "gate": NO_THRESHOLDS},
        # No interaction has this event type: Personalize fails the training (too little data).
        {"name": broken, "recipe": "aws-user-personalization", "event_type": "no-such-event",
         "campaign": {"name": f"{group}-broken"}, "gate": NO_THRESHOLDS},
    ]  # fmt: skip
    _, path, overrides = seeded_pipeline("sqlite", name, users=300, days=2)
    path = support.write_config(
        path.parent, name=name, bucket=s3_bucket, app_conn_id=f"{name}_app", solutions=solutions, **overrides
    )
    dags = support.load_dags(path, monkeypatch)
    run(dags["ingest"], logical_date=None, run_conf={"start": day(0), "end": day(2)})
    dag_run = dags["train_deploy"].test(logical_date=None)
    states = support.task_states(dag_run)
    assert states[f"{broken}.train"] == "failed", states
    assert states[f"{group}-similar.deploy_campaign"] == "success", states
    assert states[f"{group}-similar.smoke_test"] == "success", states
    assert states["finish"] == "failed" and str(dag_run.state) == "failed", states
    campaigns = {c["name"] for c in local_aws["personalize"].list_campaigns()["campaigns"]}
    assert f"{group}-similar" in campaigns and f"{group}-broken" not in campaigns
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(run_id=dag_run.run_id, task_id=f"{broken}.record").one()
        assert ti.xcom_pull(task_ids=f"{broken}.record")["failure"].startswith(
            "training or evaluation failed"
        )
