from __future__ import annotations

from datetime import UTC, datetime

import pytest

from candlekeeper.core import intervals as iv


def ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def test_fixed_width_alignment_and_close_time() -> None:
    t = ms(2021, 7, 22, 22, 25, 41)
    assert iv.align(t, "1m") == ms(2021, 7, 22, 22, 25)
    assert iv.close_time(ms(2021, 7, 22, 22, 25), "1m") == ms(2021, 7, 22, 22, 26) - 1
    assert iv.align(t, "4h") == ms(2021, 7, 22, 20)
    assert iv.align(t, "1s") == t // 1000 * 1000
    assert iv.next_open(ms(2021, 7, 22), "1d") == ms(2021, 7, 23)


def test_real_capture_close_time_matches() -> None:
    # sushiusdt 1m from the 2021-07-22 capture: t=1626992700000, T=1626992759999
    assert iv.close_time(1626992700000, "1m") == 1626992759999


def test_week_opens_on_monday() -> None:
    assert iv.align(ms(2024, 5, 2, 13), "1w") == ms(2024, 4, 29)  # Thursday -> Monday
    assert iv.align(ms(2024, 4, 29), "1w") == ms(2024, 4, 29)
    assert iv.next_open(ms(2024, 4, 29), "1w") == ms(2024, 5, 6)


@pytest.mark.parametrize(
    ("open_", "nxt"),
    [
        ((2024, 1, 1), (2024, 2, 1)),
        ((2024, 2, 1), (2024, 3, 1)),  # leap February: 29 days
        ((2023, 2, 1), (2023, 3, 1)),  # 28 days
        ((2024, 12, 1), (2025, 1, 1)),
    ],
)
def test_month_arithmetic(open_: tuple[int, int, int], nxt: tuple[int, int, int]) -> None:
    start = ms(*open_)
    assert iv.align(start + 12345678, "1M") == start
    assert iv.next_open(start, "1M") == ms(*nxt)
    assert iv.prev_open(ms(*nxt), "1M") == start
    assert iv.close_time(start, "1M") == ms(*nxt) - 1


def test_open_times_range() -> None:
    start = ms(2024, 1, 1, 0, 0, 30)
    got = iv.open_times(start, ms(2024, 1, 1, 0, 5), "1m")
    assert got == [ms(2024, 1, 1, 0, m) for m in range(1, 5)]


