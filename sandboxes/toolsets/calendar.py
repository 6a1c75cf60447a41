"""A calendar that refuses overlapping events."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from sandboxes.base import ToolFailure
from sandboxes.executable import ToolSet, tool


def _time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ToolFailure(f"not an ISO date-time: {value!r}") from exc


class Calendar(ToolSet):
    @classmethod
    def default_state(cls) -> dict[str, Any]:
        return {"events": {}, "next_id": 1}

    @classmethod
    def sample_state(cls, rng: random.Random) -> dict[str, Any]:
        """Two events on one random day, the next id after them."""
        day = f"2026-0{rng.randint(3, 9)}-1{rng.randint(0, 9)}"
        titles = rng.sample(["Team sync", "Budget review", "Dentist", "Interview", "Gym"], 2)
        events = {
            f"ev-{i + 1}": {
                "title": title,
                "start": f"{day}T{hour:02d}:00",
                "end": f"{day}T{hour + 1}:00",
                "attendees": [],
            }
            for i, (title, hour) in enumerate(zip(titles, (9, 14), strict=True))
        }
        return {"events": events, "next_id": 3}

    def _conflict(self, start: datetime, end: datetime, ignore: str | None = None) -> str | None:
        for event_id, event in self.data["events"].items():
            if event_id != ignore and _time(event["start"]) < end and start < _time(event["end"]):
                return (
                    f"conflicts with {event_id} ({event['title']}, {event['start']}-{event['end']})"
                )
        return None

    @tool()
    def list_events(self, day: str) -> list[dict[str, Any]]:
        """Events on one day, by start time.

        Args:
            day: The date, YYYY-MM-DD.
        """
        return sorted(
            ({"id": i, **e} for i, e in self.data["events"].items() if e["start"].startswith(day)),
            key=lambda e: e["start"],
        )

    @tool("write")
    def create_event(
        self, title: str, start: str, end: str, attendees: list[str] | None = None
    ) -> dict[str, Any]:
        """Create an event; fails when it overlaps another or ends before it starts.

        Args:
            title: What the event is.
            start: ISO date-time, e.g. 2026-03-02T10:00.
            end: ISO date-time after start.
            attendees: Who is invited.
        """
        begin, finish = _time(start), _time(end)
        if finish <= begin:
            raise ToolFailure("end must be after start")
        conflict = self._conflict(begin, finish)
        if conflict:
            raise ToolFailure(conflict)
        event_id = f"ev-{self.data['next_id']}"
        self.data["next_id"] += 1
        self.data["events"][event_id] = {
            "title": title,
            "start": start,
            "end": end,
            "attendees": attendees or [],
        }
        return {"id": event_id, **self.data["events"][event_id]}

    @tool("write")
    def cancel_event(self, event_id: str) -> str:
        """Cancel an event.

        Args:
            event_id: The event's id, e.g. ev-1.
        """
        if self.data["events"].pop(event_id, None) is None:
            raise ToolFailure(f"no event {event_id!r}")
        return f"cancelled {event_id}"

    @tool("write")
    def reschedule_event(self, event_id: str, start: str, end: str) -> dict[str, Any]:
        """Move an event to a new time; fails on overlap.

        Args:
            event_id: The event's id.
            start: New ISO start.
            end: New ISO end.
        """
        event = self.data["events"].get(event_id)
        if event is None:
            raise ToolFailure(f"no event {event_id!r}")
        begin, finish = _time(start), _time(end)
        if finish <= begin:
            raise ToolFailure("end must be after start")
        conflict = self._conflict(begin, finish, ignore=event_id)
        if conflict:
            raise ToolFailure(conflict)
        event.update(start=start, end=end)
        return {"id": event_id, **event}
