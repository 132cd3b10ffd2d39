import pytest

from spikemfm.core.timing import best_time, median_time, run_times


def test_timing_helpers_time_every_call():
    calls = []
    times = run_times(lambda: calls.append(1), 5)
    assert len(calls) == 5 and len(times) == 5 and all(t >= 0 for t in times)
    assert best_time(lambda: None, 3) <= median_time(lambda: sum(range(10_000)), 3)
    with pytest.raises(ValueError, match="reps=0"):
        run_times(lambda: None, 0)
