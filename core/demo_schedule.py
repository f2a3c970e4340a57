"""A demo builder's calendar: sessions inside their working hours, in their time zone, never overlapping.

Slots are drawn from the caller's seeded `random.Random`, so the same seed gives the same schedule.
"""
from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

SLOT_STEP_MINUTES = 15
WORK_DAYS = range(0, 5)  # Monday to Friday


class BuilderCalendar:
    def __init__(self, zone: str, work_hours: tuple[int, int]):
        self.zone = ZoneInfo(zone)
        self.first_minute, self.last_minute = work_hours[0] * 60, work_hours[1] * 60
        self._busy: dict[date, list[tuple[datetime, datetime]]] = defaultdict(list)

    def pick_slot(self, rng: random.Random, after: datetime, minutes: int, *, within_days: int = 21,
                  occupy: bool = True, tries: int = 12) -> datetime | None:
        """A start (UTC) on a working day 1 to `within_days` days after `after`, inside working hours.

        With `occupy` the slot must be free and is then taken; without it (a hold that expired, a
        session canceled) any slot in working hours will do. None when no free slot was found.
        """
        latest_start = self.last_minute - minutes
        if latest_start < self.first_minute:
            return None
        for _ in range(tries if occupy else 100):  # without `occupy` only weekends can be missed
            day = (after + timedelta(days=rng.randrange(1, within_days + 1))).astimezone(self.zone).date()
            if day.weekday() not in WORK_DAYS:
                continue
            minute = self.first_minute + SLOT_STEP_MINUTES * rng.randrange(
                (latest_start - self.first_minute) // SLOT_STEP_MINUTES + 1)
            local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone)
            start = local.astimezone(timezone.utc)
            end = start + timedelta(minutes=minutes)
            if not occupy:
                return start
            if all(end <= taken_start or taken_end <= start for taken_start, taken_end in self._busy[day]):
                self._busy[day].append((start, end))
                return start
        return None
