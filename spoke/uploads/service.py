"""One upload batch of a case: every file converted (one bad file refuses the batch, nothing is
queued), de-identified when the clinic chose to (the one profile the bridge applies too), then
queued durably and the worker woken."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.deid import DeidRefused, Profile, deidentify_bytes
from spoke.uploads.convert import MAX_FILES, Instance, UploadRefused, convert, new_batch
from spoke.uploads.queue import UploadQueue


@dataclass
class UploadService:
    queue: UploadQueue
    wake: Callable[[], None]
    profile: Profile | None = None  # None: instances leave as converted (no de-identification)

    def accept(
        self, case: dict[str, Any], files: Sequence[tuple[str, bytes]], now: datetime
    ) -> list[Instance]:
        """Queue ``files`` (name, content) for ``case``; ``UploadRefused`` says in words why not."""
        if len(files) > MAX_FILES:
            raise UploadRefused(f"choose at most {MAX_FILES} files at a time.")
        batch = new_batch(case, now)
        instances = [self._outgoing(convert(name, data, batch)) for name, data in files]
        for instance in instances:
            self.queue.add(case["uid"], instance, now)
        self.wake()
        return instances

    def _outgoing(self, instance: Instance) -> Instance:
        if self.profile is None:
            return instance
        try:
            data, sop_uid = deidentify_bytes(instance.data, self.profile)
        except DeidRefused as exc:
            raise UploadRefused(f"{instance.name}: not taken: {exc}") from None
        return Instance(sop_uid, instance.sop_class, instance.kind, instance.name, data)
