"""(e) Over the whole tier the scheduler never failed a try on a stale executor event (the deferral race).

Runs last (file order): by now the tier went through every deferral of (a)-(d).
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.stack


def test_no_state_mismatch_over_the_tier(stack):
    assert stack.deferrals() > 0, "the tier must go through deferrals for this to mean anything"
    assert stack.state_mismatch_lines() == []
    events = stack.api("GET", "eventLogs", params={"event": "state mismatch", "limit": 10}).json()
    assert events["total_entries"] == 0, events
