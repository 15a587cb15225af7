"""What `make demo` prints after its runs: every campaign, every solution's gate decision, samples of
each solution's recommendations (from its campaign, or from its batch output), and the reports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from include.pipeline.config import PipelineConfig
from include.pipeline.extract_sql import most_active
from include.pipeline.history import history_solution, read_history, solution_history_key
from include.pipeline.serving import recommended_items, smoke_requests


def show_results(config: PipelineConfig, s3, personalize_url: str, demo_dir: Path, say) -> None:
    import boto3

    from include.pipeline.reconcile import format_table, reconcile

    control = boto3.client("personalize", endpoint_url=personalize_url, region_name="us-east-1")
    runtime = boto3.client("personalize-runtime", endpoint_url=personalize_url, region_name="us-east-1")
    print()
    say("reconcile (per day: app DB vs imported into Personalize vs quarantined):")
    print(format_table(reconcile(config)), flush=True)
    campaigns = {c["name"]: c["campaignArn"] for c in control.list_campaigns()["campaigns"]}
    users, items = most_active(config, "USER_ID", 2), most_active(config, "ITEM_ID", 2)
    for entry in config.solutions:
        print()
        say(f"solution {entry.name} ({entry.recipe}):")
        history = read_history(s3, config.s3.bucket, solution_history_key(config, entry.name))
        if history:
            last = history[-1]
            say(f"  gate {last['decision']['verdict']}: {last.get('reason', '')}")
            for line in last["decision"].get("table", "").splitlines():
                say(f"    {line}")
        if entry.campaign is not None:
            arn = campaigns.get(entry.campaign.name)
            if arn is None:
                say(f"  campaign {entry.campaign.name}: not created (no version passed the gate)")
                continue
            campaign = control.describe_campaign(campaignArn=arn)["campaign"]
            say(
                f"  campaign {campaign['name']}: {campaign['status']}, serving {campaign['solutionVersionArn']}"
            )
            for request in smoke_requests(entry.recipe, arn, users=users, items=items, num_results=5):
                answer = recommended_items(getattr(runtime, request.operation)(**request.kwargs))
                say(f"  {request.label}: " + ", ".join(answer[:5]))
        if entry.batch is not None:
            show_batch_sample(config, s3, entry.name, say)
    copy_reports(config, s3, demo_dir, say)


def show_batch_sample(config: PipelineConfig, s3, name: str, say) -> None:
    prefix = config.s3.key("batch", name) + "/"
    keys = sorted(
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=config.s3.bucket, Prefix=prefix)
        for o in page.get("Contents", [])
        if "/output/" in o["Key"]
    )
    if not keys:
        say(f"  batch output: none under s3://{config.s3.bucket}/{prefix}")
        return
    body = s3.get_object(Bucket=config.s3.bucket, Key=keys[-1])["Body"].read().decode()
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    say(f"  batch output s3://{config.s3.bucket}/{keys[-1]}: {len(lines)} lines, for example")
    for line in lines[:2]:
        asked = {k: v for k, v in line["input"].items() if k != "itemList"}
        say(f"    {asked} -> {', '.join(line['output']['recommendedItems'][:5])}")


def copy_reports(config: PipelineConfig, s3, demo_dir: Path, say) -> None:
    local = demo_dir / "report"
    shutil.rmtree(local, ignore_errors=True)
    local.mkdir(parents=True)
    for entry in config.solutions:
        folder = history_solution(config, entry.name) or ""
        prefix = config.s3.key("history", folder, "reports") + "/"
        for o in s3.list_objects_v2(Bucket=config.s3.bucket, Prefix=prefix).get("Contents", []):
            target = local / entry.name / Path(o["Key"]).name
            target.parent.mkdir(exist_ok=True)
            s3.download_file(config.s3.bucket, o["Key"], str(target))
    overview = config.s3.key("history", "overview.png")
    # Drawn by train_deploy's finish; a demo stopped before it has none.
    if s3.list_objects_v2(Bucket=config.s3.bucket, Prefix=overview).get("KeyCount"):
        s3.download_file(config.s3.bucket, overview, str(local / "overview.png"))
    say(f"reports per solution (and the overview.png of every solution) copied to {local}/")
