"""The demo shop's live traffic: users ask for recommendations and act on some of them.

Each user gets GetRecommendations from the campaign, clicks one of the first five items and now and
then buys it, sending both events with PutEvents and the recommendationId of the answer they came
from, so the metric attribution credits the campaign. Deterministic for a seed.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

PURCHASE_SHARE = 0.3


def send_recommendation_events(
    control: Any,
    runtime: Any,
    events: Any,
    *,
    campaign_name: str,
    tracker_name: str,
    users: Sequence[str],
    seed: int = 7,
) -> dict[str, float]:
    """Returns what was sent: `click` and `purchase` counts and `revenue` (the purchases' EVENT_VALUE)."""
    rng = random.Random(seed)
    campaign_arn = next(
        c["campaignArn"] for c in control.list_campaigns()["campaigns"] if c["name"] == campaign_name
    )
    tracker_arn = next(
        t["eventTrackerArn"]
        for t in control.list_event_trackers()["eventTrackers"]
        if t["name"] == tracker_name
    )
    tracking_id = control.describe_event_tracker(eventTrackerArn=tracker_arn)["eventTracker"]["trackingId"]
    sent: Counter[str] = Counter()
    revenue = 0.0
    for user in users:
        answer = runtime.get_recommendations(campaignArn=campaign_arn, userId=user, numResults=10)
        items = [entry["itemId"] for entry in answer["itemList"]]
        if not items:
            continue
        item = rng.choice(items[:5])
        now = time.time()
        event_list = [
            {
                "eventType": "click",
                "itemId": item,
                "sentAt": now,
                "recommendationId": answer["recommendationId"],
            }
        ]
        if rng.random() < PURCHASE_SHARE:
            price = round(rng.uniform(5, 120), 2)
            event_list.append(
                {
                    "eventType": "purchase",
                    "itemId": item,
                    "sentAt": now + 1,
                    "eventValue": price,
                    "recommendationId": answer["recommendationId"],
                }
            )
            revenue += price
        events.put_events(trackingId=tracking_id, userId=user, sessionId=f"demo-{user}", eventList=event_list)
        sent.update(e["eventType"] for e in event_list)
    return {"click": sent["click"], "purchase": sent["purchase"], "revenue": round(revenue, 2)}
