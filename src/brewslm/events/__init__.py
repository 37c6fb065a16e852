"""RunEvents: emit_event, the reason-code taxonomy, and the views fed by the event stream."""

from brewslm.events.emit import collect_events, emit_event

__all__ = ["collect_events", "emit_event"]
