"""Alerts that reach people, through Airflow's own notifiers (config key `notifications`).

Channels: an SNS topic through the Amazon provider's `SnsNotifier`, e-mail through the SMTP
provider's `SmtpNotifier`. Events: a task failed (`task_failure`, as `on_failure_callback`), the gate
rejected a challenger (`gate_rejected`, with the metrics table), N rejections in a row
(`rejections_in_a_row`), the serving model is older than `campaign.max_serving_age_days`
(`serving_model_too_old`), and a data-shrink guard stopped a run (`data_shrink`: a FULL import
that would shrink the dataset, or training on a dataset that shrank; `tasks` calls `data_shrink`).

A notification that cannot be sent is logged as NOTIFICATION FAILED and never fails the pipeline
task that sent it: the task's own outcome stays what it was.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

TASK_FAILURE = "task_failure"
GATE_REJECTED = "gate_rejected"
REJECTIONS_IN_A_ROW = "rejections_in_a_row"
SERVING_MODEL_TOO_OLD = "serving_model_too_old"
DATA_SHRINK = "data_shrink"
EVENTS = (TASK_FAILURE, GATE_REJECTED, REJECTIONS_IN_A_ROW, SERVING_MODEL_TOO_OLD, DATA_SHRINK)

# Rendered by Airflow with the failed task's context when the notifier runs as on_failure_callback.
FAILURE_SUBJECT = "[{pipeline}] task {{{{ ti.task_id }}}} of {{{{ ti.dag_id }}}} failed"
FAILURE_MESSAGE = (
    "Pipeline {pipeline}: task {{{{ ti.task_id }}}} of DAG {{{{ ti.dag_id }}}} failed.\n"
    "Run: {{{{ ti.run_id }}}} (try {{{{ ti.try_number }}}})\n"
    "Error: {{{{ exception }}}}\n"
)
# SNS subjects: at most 100 ASCII characters.
SUBJECT_LIMIT = 100


def _settings(config):
    return config.notifications


def _notifiers(config, subject: str, message: str) -> list:
    """One Airflow notifier per configured channel, carrying this subject and message."""
    settings = _settings(config)
    notifiers: list = []
    if settings.sns_topic_arn:
        from airflow.providers.amazon.aws.notifications.sns import SnsNotifier

        notifiers.append(
            SnsNotifier(
                aws_conn_id=settings.aws_conn_id or config.aws_conn_id,
                region_name=config.region_name,
                target_arn=settings.sns_topic_arn,
                subject=subject,
                message=message,
            )
        )
    if settings.email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers.append(
            SmtpNotifier(
                to=list(settings.email),
                smtp_conn_id=settings.smtp_conn_id,
                subject=subject,
                html_content=f"<pre>{_escape(message)}</pre>",
            )
        )
    return notifiers


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _subject(config, text: str) -> str:
    subject = f"[{config.name}] {text}"
    subject = subject.encode("ascii", "replace").decode("ascii").replace("\n", " ")
    return subject if len(subject) <= SUBJECT_LIMIT else subject[: SUBJECT_LIMIT - 3] + "..."


def enabled(config, event: str) -> bool:
    settings = _settings(config)
    return event in settings.events and bool(settings.sns_topic_arn or settings.email)


def notify(config, event: str, subject: str, message: str) -> int:
    """Send `event` to every configured channel unless the config leaves it out; returns how many were sent."""
    if event not in EVENTS:
        raise ValueError(f"unknown notification event {event!r}; one of {EVENTS}")
    if not enabled(config, event):
        return 0
    sent = 0
    for notifier in _notifiers(config, _subject(config, subject), message):
        try:
            notifier.notify({})
            sent += 1
        except Exception:  # an alert channel being down must not change the task's outcome
            log.exception("NOTIFICATION FAILED: %s via %s: %s", event, type(notifier).__name__, subject)
    if sent:
        log.info("notified %s (%d channel(s)): %s", event, sent, subject)
    return sent


def failure_callbacks(config) -> list:
    """Notifiers for `on_failure_callback`: Airflow renders the subject and message per failed task."""
    if not enabled(config, TASK_FAILURE):
        return []
    subject = FAILURE_SUBJECT.format(pipeline=config.name)
    return _notifiers(config, subject, FAILURE_MESSAGE.format(pipeline=config.name))


# ------------------------------------------------------------------------------ training events


def gate_rejected(config, decision: Mapping[str, Any], champion: str) -> int:
    message = (
        f"Pipeline {config.name}: the gate rejected the challenger; {_serving(config)} "
        f"keeps serving {champion}.\n{decision.get('summary', '')}\n\n{decision.get('table', '')}\n"
    )
    return notify(config, GATE_REJECTED, "challenger rejected by the gate", message)


def _serving(config) -> str:
    """What serves the (per-solution) config's model: its campaign, or batch inference alone."""
    if config.campaign is not None:
        return f"campaign {config.campaign.name}"
    return f"solution {config.solution.name} (batch only)"


def trailing_rejections(history: Iterable[Mapping[str, Any]]) -> int:
    """How many of the newest metrics-history records in a row are rejected challengers (dry runs
    skipped, and replay mode's PENDING / SUPERSEDED lines, which decide nothing)."""
    count = 0
    for record in reversed(list(history)):
        verdict = (record.get("decision") or {}).get("verdict")
        if record.get("dry_run") or verdict in ("PENDING", "SUPERSEDED"):
            continue
        if verdict != "REJECTED":
            break
        count += 1
    return count


def rejections_in_a_row(config, history: Iterable[Mapping[str, Any]]) -> int:
    """Notify when exactly the configured number of rejections in a row is reached (once, not every run after)."""
    records = list(history)
    count = trailing_rejections(records)
    limit = _settings(config).rejections_in_a_row
    if count != limit:
        return 0
    lines = [
        f"- {r.get('created_at', '?')} {r.get('solution_version_arn', '?')}: {r.get('reason', '')}"
        for r in records[-count:]
    ]
    message = (
        f"Pipeline {config.name}: the gate rejected {count} challengers in a row; "
        f"{_serving(config)} serves an ever older model. Check the data and the gate.\n" + "\n".join(lines)
    )
    return notify(config, REJECTIONS_IN_A_ROW, f"{count} challengers rejected in a row", message)


def serving_model_too_old(config, warning: str) -> int:
    message = f"Pipeline {config.name}, {_serving(config)}: {warning}"
    return notify(config, SERVING_MODEL_TOO_OLD, "serving model too old", message)


def data_shrink(config, message: str) -> int:
    """For the data-shrink guards: a FULL import that would shrink the dataset, or training on a
    dataset that shrank since the champion was trained, was stopped."""
    return notify(
        config, DATA_SHRINK, "data-shrink guard stopped the run", f"Pipeline {config.name}: {message}"
    )
