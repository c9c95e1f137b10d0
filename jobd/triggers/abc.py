"""What every time trigger must do. Triggers are pure: no clock, no I/O, no event loop."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from jobd._enums import TriggerKind


class TimeTrigger(Protocol):
    """Answers "when next?" for one time-based trigger of one job."""

    @property
    def kind(self) -> TriggerKind:
        """``TriggerKind.CRON`` or ``TriggerKind.EVERY``: what ``JOBD_TRIGGER`` says."""
        ...

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (an aware datetime), as an aware UTC
        datetime; ``None`` when the trigger never fires again."""
        ...

    def describe(self) -> str:
        """A short human text: ``cron '*/5 * * * *' (Europe/Berlin)``, ``every day at +3h12m``."""
        ...
