"""Digest crons mean what crontab means, though APScheduler 3 counts weekdays from Monday."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from daemon.app.schedule import cron_trigger, crontab_weekdays


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("1", "mon"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("0,6", "sun,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("mon-fri", "mon-fri"),
    ],
)
def test_numeric_weekdays_follow_crontab(field: str, expected: str) -> None:
    assert crontab_weekdays(field) == expected


def test_weekday_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        crontab_weekdays("8")


def test_monday_digest_fires_on_monday_in_the_config_zone() -> None:
    # 2026-11-24 is a Tuesday; "0 9 * * 1" is next Monday 09:00 Berlin time.
    trig = cron_trigger("0 9 * * 1", ZoneInfo("Europe/Berlin"))
    fire = trig.get_next_fire_time(None, datetime(2026, 11, 24, 12, tzinfo=UTC))
    assert fire is not None
    assert fire.isoformat() == "2026-11-30T09:00:00+01:00"
    assert fire.weekday() == 0


def test_daily_digest_across_dst_change_stays_at_local_nine() -> None:
    trig = cron_trigger("0 9 * * *", ZoneInfo("Europe/Berlin"))
    # the night of 2026-10-25 Berlin leaves summer time
    fire = trig.get_next_fire_time(None, datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert fire is not None and fire.isoformat() == "2026-10-25T09:00:00+01:00"
    assert fire.astimezone(UTC).hour == 8
