"""Classification leases, on both engines: one workstation classifies a sample at a time, the
other is told who holds it, and a holder that stops renewing (crashed) loses it by itself."""

from __future__ import annotations

import time

import pytest

from engine.store.leases import SampleBusyError
from engine.store.results import ResultStore


@pytest.fixture
def desks(store_target, tmp_path):
    a, b = ResultStore.open(store_target), ResultStore.open(store_target)
    a.create_or_get_sample("S", tmp_path)
    yield a, b
    a.close()
    b.close()


def test_a_held_sample_is_refused_to_the_other_workstation_with_who_holds_it(desks):
    a, b = desks
    lease = a.leases.acquire("S", "tom")
    with pytest.raises(SampleBusyError, match="being classified by tom on") as busy:
        b.leases.acquire("S", "rita")
    assert busy.value.holder == "tom" and busy.value.since <= busy.value.until
    assert b.leases.holder("S").holder == "tom"
    a.leases.release(lease)
    assert b.leases.holder("S") is None
    assert b.leases.acquire("S", "rita").holder == "rita"


def test_a_crashed_holder_loses_the_lease_when_it_runs_out(desks):
    a, b = desks
    stale = a.leases.acquire("S", "tom", seconds=0.2)  # tom's workstation then dies: no renewal
    time.sleep(0.3)
    taken = b.leases.acquire("S", "rita")
    with pytest.raises(SampleBusyError, match="rita"):
        a.leases.renew(stale)  # too late: rita has it now
    a.leases.release(stale)  # a late release does not free rita's lease
    assert b.leases.holder("S") == taken


def test_renewing_keeps_the_lease(desks):
    a, b = desks
    lease = a.leases.renew(a.leases.acquire("S", "tom", seconds=0.2), seconds=60)
    time.sleep(0.3)
    with pytest.raises(SampleBusyError):
        b.leases.acquire("S", "rita")
    assert a.leases.holder("S").token == lease.token
