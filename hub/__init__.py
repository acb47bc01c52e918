"""The hub: the only place that decides (routing, queue, SLA, advice). ``create_app`` builds it."""
