"""The flows a worker can walk. Each module owns its flow and the commands that start it;
`all_flows` assembles them for the engine."""

from __future__ import annotations

from handlers.flow import Flow


def all_flows() -> dict[str, Flow]:
    from handlers.complaint import complaint
    from handlers.guide import guide
    from handlers.jobs import jobs
    from handlers.legal_aid import legal_aid
    from handlers.menu import language, menu
    from handlers.notices import notices
    from handlers.privacy import privacy
    from handlers.talk import relay, talk
    from handlers.tickets import tickets

    flows = (
        *(menu, language, complaint, talk, relay, tickets, privacy, jobs, legal_aid, guide),
        notices,
    )
    return {flow.name: flow for flow in flows}


def all_buttons():
    """Buttons that answer whatever the worker is being asked (feedback after resolution)."""
    from handlers.feedback import BUTTONS
    from handlers.job_alerts import BUTTONS as JOB_ALERT_BUTTONS

    return {**BUTTONS, **JOB_ALERT_BUTTONS}
