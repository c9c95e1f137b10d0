"""What travels on the bus: small frozen trigger events, one per accepted trigger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import anyio

from jobd._enums import TriggerKind
from jobd.journal.abc import RunRecord


class Reply:
    """Where the supervisor answers a trigger that waits for its run (a manual run)."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self.run: RunRecord | None = None
        self.error: Exception | None = None

    def resolve(self, run: RunRecord | None, error: Exception | None = None) -> None:
        self.run, self.error = run, error
        self._done.set()

    async def wait(self) -> RunRecord:
        await self._done.wait()
        if self.error is not None:
            raise self.error
        assert self.run is not None
        return self.run


@dataclass(frozen=True, slots=True, kw_only=True)
class Trigger:
    """A reason to run a job, as posted by a trigger source."""

    job_id: str
    kind: TriggerKind
    scheduled_for: datetime | None = None
    cursor_key: str | None = None  # time triggers: the cursor this slot advances
    changed_paths: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    flow_id: str | None = None
    reply: Reply | None = field(default=None, compare=False)
