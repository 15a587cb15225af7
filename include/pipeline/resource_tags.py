"""The config's tags (`resource_tags` plus pipeline=<name>) on every Personalize resource it owns.

Create calls carry the tags (the operators' `tags`); a resource that already existed, created by an
earlier version of the config or by hand, keeps its own tags there, so this adds the missing or
different ones with TagResource. Tags the config does not name are left alone: someone else's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from include.pipeline.clients import personalize_hook
from include.pipeline.config import PipelineConfig

log = logging.getLogger(__name__)


def created_arns(resources: Mapping[str, Any]) -> list[str]:
    """The taggable resources PersonalizeEnsureResourcesOperator returns (schemas take no tags)."""
    arns = [resources.get("dataset_group_arn"), resources.get("event_tracker_arn")]
    for key in ("dataset_arns", "solution_arns", "filter_arns"):
        arns.extend((resources.get(key) or {}).values())
    return [arn for arn in arns if arn]


def sync(config: PipelineConfig, arns: Iterable[str | None]) -> dict[str, dict[str, str]]:
    """TagResource where a resource lacks one of the config's tags or has another value; returns what changed."""
    client = personalize_hook(config).conn
    wanted = config.all_resource_tags
    changed = {}
    for arn in arns:
        if not arn:
            continue
        have = {t["tagKey"]: t["tagValue"] for t in client.list_tags_for_resource(resourceArn=arn)["tags"]}
        missing = {key: value for key, value in wanted.items() if have.get(key) != value}
        if missing:
            client.tag_resource(
                resourceArn=arn, tags=[{"tagKey": k, "tagValue": v} for k, v in sorted(missing.items())]
            )
            log.info("tagged %s with %s (it had %s)", arn, missing, have)
            changed[arn] = missing
    return changed


def sync_created(config: PipelineConfig, resources: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    return sync(config, created_arns(resources))
