"""What the operator tests share: running an operator in either waiting mode, counting resources."""

from __future__ import annotations

import pytest

from tests.plugins.conftest import (
    make_context,
    run_deferrable,
)


def count(client, operation: str, result_key: str, **filters) -> int:
    return sum(len(page[result_key]) for page in client.get_paginator(operation).paginate(**filters))


MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["wait_for_completion", "deferrable"])


def trigger_names(run) -> list[str]:
    return [classpath.rsplit(".", 1)[1] for classpath, _, _ in run.deferrals]


def run_operator(operator, deferrable: bool, context=None):
    """Run in the mode asked; a deferrable run must really defer, then finish from the event."""
    context = context or make_context(operator)
    if not deferrable:
        return operator.execute(context), []
    run = run_deferrable(operator, context)
    assert run.deferrals, "the deferrable task never deferred"
    return run.result, trigger_names(run)
