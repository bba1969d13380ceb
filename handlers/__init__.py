"""The flows a worker can walk. Each module owns its flow and the commands that start it;
`all_flows` assembles them for the engine."""

from __future__ import annotations

from handlers.flow import Flow


def all_flows() -> dict[str, Flow]:
    from handlers.complaint import complaint
    from handlers.menu import language, menu
    from handlers.privacy import privacy
    from handlers.tickets import tickets

    return {flow.name: flow for flow in (menu, language, complaint, tickets, privacy)}
