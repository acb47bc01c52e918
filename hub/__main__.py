"""``python -m hub``: the hub's production entry point. Under eventlet, monkey-patching happens
here, first thing, and nowhere else (DESIGN.md)."""

from config.settings import load_settings

if load_settings("hub").async_mode == "eventlet":
    import eventlet

    eventlet.monkey_patch()

from hub.serve import main  # noqa: E402  (after monkey-patching, on purpose)

main()
