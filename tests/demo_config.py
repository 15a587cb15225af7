"""The shipped demo config, for tests that need one solution: its first entry in the shorthand form."""

from __future__ import annotations

import copy

import yaml

from tests.conftest import REPO_ROOT

DEMO_CONFIG = REPO_ROOT / "include" / "config" / "demo_retail.yaml"


def one_solution(data: dict | None = None) -> dict:
    """The demo config (or `data`) with its first solution written as `solution:` + `campaign:` +
    `batch_inference:` + `gate:` (without the baseline): the form a one-solution pipeline uses."""
    data = copy.deepcopy(
        data if data is not None else yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    )
    first = dict(data.pop("solutions")[0])
    data["campaign"] = first.pop("campaign")
    data["batch_inference"] = first.pop("batch")
    gate = {k: v for k, v in first.pop("gate", {}).items() if k not in ("baseline", "min_lift")}
    data["gate"] = {**data.get("gate", {}), **gate}
    data["solution"] = first
    return data
