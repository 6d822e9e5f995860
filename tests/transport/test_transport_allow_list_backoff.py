"""Allow-list matching and the exponential full-jitter backoff (pure Python)."""

from __future__ import annotations

import statistics

import pytest

from biomoe_edge.runtime.transport import AllowList, Backoff, DeviceTarget, normalize_address


def test_addresses_are_normalised_and_checked():
    assert normalize_address("f0-00-00-00-00-0a") == "F0:00:00:00:00:0A"
    with pytest.raises(ValueError, match="not a Bluetooth address"):
        normalize_address("F0:00:00:00:00")
    with pytest.raises(ValueError, match="name or an address"):
        DeviceTarget()


def test_allow_list_matches_by_address_by_name_or_both():
    by_name = DeviceTarget(name="wear-1")
    by_address = DeviceTarget(address="f0:00:00:00:00:02")
    both = DeviceTarget(name="wear-3", address="F0:00:00:00:00:03")
    allow = AllowList([by_name, by_address, both])
    assert allow.match("AA:AA:AA:AA:AA:AA", "wear-1") is by_name
    assert allow.match("F0:00:00:00:00:02", None) is by_address
    assert allow.match("F0:00:00:00:00:03", "wear-3") is both
    assert allow.match("F0:00:00:00:00:03", "wear-9") is None  # the address alone is not enough for `both`
    assert allow.match("F0:00:00:00:00:09", "wear-3") is None
    assert allow.match("F0:00:00:00:00:09", "intruder") is None
    assert allow.match("4D3B1E2A-0000-4000-8000-000000000000", None) is None  # macOS UUIDs never match addresses
    assert by_address.label == "F0:00:00:00:00:02" and both.label == "wear-3"
    with pytest.raises(ValueError, match="listed twice"):
        AllowList([DeviceTarget(name="a"), DeviceTarget(name="a")])


def test_backoff_ceiling_doubles_up_to_the_cap_and_delays_are_full_jitter():
    backoff = Backoff(initial_s=0.5, max_s=8.0, seed=1)
    assert [backoff.ceiling(k) for k in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff.ceiling(100_000) == 8.0  # no overflow for a device gone for days
    delays = []
    for k in range(2000):
        delays.append(backoff.next_delay())
    capped = delays[10:]
    assert all(0.0 <= d <= 8.0 for d in capped)
    # Uniform(0, 8): mean 4, sd 2.31; "full jitter" means spread over the whole range, not around the cap.
    assert statistics.mean(capped) == pytest.approx(4.0, abs=0.3)
    assert min(capped) < 0.5 and max(capped) > 7.5
    assert all(0.0 <= delays[k] <= backoff.ceiling(k) for k in range(10))


def test_backoff_is_reproducible_with_a_seed_and_resets():
    first = Backoff(seed=7)
    second = Backoff(seed=7)
    assert [first.next_delay() for _ in range(10)] == [second.next_delay() for _ in range(10)]
    assert first.attempt == 10
    first.reset()
    assert first.attempt == 0 and first.ceiling() == 0.5
    with pytest.raises(ValueError):
        Backoff(initial_s=5, max_s=1)
