"""Which pending challenger is due for replay, on which window, and the names that make reruns
adopt instead of create. Pure: the metrics history and the dataset's days in, a plan out.

A challenger trained in replay mode is recorded PENDING with `replay.window = [D, D + holdout)`,
D the day after the newest interactions day the dataset held when it trained. It is due once the
dataset holds every day of its window. A later record with `replay_of = <its ARN>` resolves it.
A dry run's lines are recorded (marked `dry_run`) but neither wait nor resolve: a dry run changes
no state, so the next real run still scores the challenger a dry run scored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from include.pipeline import days

PENDING = "PENDING"
# What one run does in replay mode.
SCORE, WAIT, TRAIN = "score", "wait", "train"


@dataclass(frozen=True)
class Window:
    start: date
    end: date  # exclusive

    @classmethod
    def after(cls, data_end: date, holdout_days: int) -> Window:
        return cls(data_end, data_end + timedelta(days=holdout_days))

    @classmethod
    def from_list(cls, values: Sequence[str]) -> Window:
        return cls(date.fromisoformat(values[0]), date.fromisoformat(values[1]))

    def as_list(self) -> list[str]:
        return [self.start.isoformat(), self.end.isoformat()]

    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days)]

    @property
    def seed(self) -> int:
        """The held-out sample's seed: the window's, so every model and every rerun draws the same users."""
        digest = hashlib.blake2b(f"{self.start}|{self.end}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")


def data_end(partitions: Iterable[str]) -> date | None:
    """The day after the newest `dt=` partition the dataset holds (None: it holds none)."""
    held = [days.partition_day(p) for p in partitions]
    return max(held) + timedelta(days=1) if held else None


@dataclass(frozen=True)
class ReplayPlan:
    action: str  # SCORE | WAIT | TRAIN
    reason: str
    pending: Mapping | None = None  # the PENDING record to score (SCORE) or waited for (WAIT)
    window: Window | None = None


def pending_records(history: Sequence[Mapping]) -> list[Mapping]:
    """PENDING records no later real (not dry-run) record resolved, oldest first."""
    resolved = {r.get("replay_of") for r in history if r.get("replay_of") and not r.get("dry_run")}
    return [
        r
        for r in history
        if _verdict(r) == PENDING and r["solution_version_arn"] not in resolved and not r.get("dry_run")
    ]


def plan(history: Sequence[Mapping], held_data_end: date | None) -> ReplayPlan:
    """Score the oldest pending challenger whose window the dataset holds; else wait; else train."""
    waiting = pending_records(history)
    if not waiting:
        return ReplayPlan(TRAIN, "no challenger is waiting for replay")
    record = waiting[0]
    window = Window.from_list(record["replay"]["window"])
    arn = record["solution_version_arn"]
    if held_data_end is not None and held_data_end >= window.end:
        return ReplayPlan(
            SCORE, f"{arn} is due: the dataset holds its window {_text(window)}", record, window
        )
    holds = held_data_end.isoformat() if held_data_end else "nothing"
    return ReplayPlan(
        WAIT,
        f"{arn} waits for its replay window {_text(window)}: the dataset holds days before {holds}; "
        "no new challenger trains until it is decided",
        record,
        window,
    )


def champion_saw_window(
    champion_record: Mapping | None, champion_created: datetime | None, window: Window
) -> str | None:
    """Why the champion cannot be compared on `window` (it may have trained on it), or None."""
    recorded = ((champion_record or {}).get("replay") or {}).get("data_end")
    if recorded is not None:
        if date.fromisoformat(recorded) > window.start:
            return f"the champion was trained on days up to {recorded}, inside the window {_text(window)}"
        return None
    if champion_created is not None and champion_created.date() > window.start:
        return (
            f"the champion was created on {champion_created.date()}, after the window began "
            f"({_text(window)}), and recorded no data end: it may have trained on the window"
        )
    return None


def job_name(solution: str, role: str, solution_version_arn: str, window: Window) -> str:
    """The batch inference job scoring one model for `solution`'s replay on `window`.

    Deterministic, so a rerun adopts the job: the digest covers the judged solution (two solutions
    may score the same baseline version on the same window, each on its own held-out users), the
    scored version and the window. Within Personalize's jobName rule (1-63 characters: letters,
    digits, - and _, a letter or digit first): the solution name is a PersonalizeName, cut to leave
    room for the role and the digest.
    """
    digest = hashlib.sha256(
        f"{solution}|{solution_version_arn}|{window.start}|{window.end}".encode()
    ).hexdigest()[:10]
    return f"{solution[:32]}-replay-{role[:10]}-{digest}"


def folder(solution: str, window: Window) -> str:
    """Each solution's replay inputs and outputs: its held-out users depend on its event type."""
    return f"replay/{solution}/{window.start}_{window.end}"


def _verdict(record: Mapping) -> str | None:
    decision = record.get("decision")
    return decision.get("verdict") if isinstance(decision, Mapping) else decision


def _text(window: Window) -> str:
    return f"[{window.start}, {window.end})"
