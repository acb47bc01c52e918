"""Times as people read them: in the configured time zone (config ``timezone``), never bare UTC.

Pages and printed records call ``local_time`` (a Jinja filter in hub and spoke) with a datetime or
the ISO text the wire carries; the zone's abbreviation is shown so that a reader is never unsure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str) -> ZoneInfo:
    """The zone named in the settings; an unknown name is a configuration error, said plainly."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"Unknown time zone {name!r}: use an IANA name such as Asia/Kolkata."
        ) from None


def local_time(value: object, tz: ZoneInfo, fmt: str = "%d %b %Y, %H:%M") -> str:
    """``value`` (aware datetime, or ISO 8601 text; naive means UTC) in ``tz``, with its zone."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if not isinstance(value, datetime):
        return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(tz)
    return f"{local.strftime(fmt)} {local.tzname() or tz.key}"
