"""The worker's parts, each without a broker: the commit policy, the filing pool, the idle-exit
rule and the assignment as rebalances apply it (fake clock, fake listener calls)."""

from __future__ import annotations

import threading

from kafka.structs import TopicPartition

from service import idle
from service.assignment import Assignment
from service.batching import SealedBatch
from service.membership import Membership
from service.offsets import CommitPolicy
from service.pool import FilingPool


class Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def sealed(partition=0, volume=1):
    return SealedBatch("LA", "B", volume, partition, 0, 1, 0, "upstream", (), ())


def test_commit_policy_only_forward_only_owned():
    c = CommitPolicy()
    assert c.offsets({0: 5, 1: 7, 2: 3}, owned={0, 1}) == {0: 5, 1: 7}
    c.done({0: 5, 1: 7})
    assert c.offsets({0: 5, 1: 9}, owned={0, 1}) == {1: 9}  # nothing backwards or repeated
    c.forget(1)
    assert c.offsets({1: 7}, owned={1}) == {1: 7}  # a partition that comes back is committed again


def test_filing_pool_hands_results_and_failures_back_and_bounds_concurrency():
    gate, running, peak = threading.Event(), [], []

    def file(sb):
        running.append(sb)
        peak.append(len(running))
        gate.wait(10)
        running.remove(sb)
        if sb.volume == 3:
            raise ValueError("boom")
        return {"volume": sb.volume}

    pool = FilingPool(2, file)
    for v in (1, 2, 3):
        pool.submit(sealed(volume=v))
    assert len(pool) == 3 and pool.busy({0}) and not pool.busy({1})
    gate.set()
    done = []
    deadline = threading.Event()
    for _ in range(100):
        done += pool.done()
        if len(done) == 3:
            break
        deadline.wait(0.05)
    results = {sb.volume: (f.exception() or f.result()) for sb, f in done}
    assert results[1] == {"volume": 1} and isinstance(results[3], ValueError)
    assert max(peak) <= 2 and len(pool) == 0


def state(**kw):
    base = dict(now=1000.0, started=0.0, joined=True, rebalancing=False, filing=False, open_batches=False,
                dead_letters_pending=False, caught_up=lambda: True, last_activity=0.0, last_rebalance=0.0)
    base.update(kw)
    return idle.State(**base)


def test_idle_exit_waits_for_each_thing_and_says_which():
    assert idle.blockers(state(), idle=4, session_timeout=6) == []
    assert idle.blockers(state(filing=True, open_batches=True), 4, 6) == ["batches being filed",
                                                                          "open batches to be sealed"]
    assert idle.blockers(state(caught_up=lambda: False), 4, 6) == ["its partitions to be read to the end"]
    assert idle.blockers(state(last_activity=998.0), 4, 6) == ["4 s without new records"]
    assert idle.blockers(state(last_rebalance=995.0), 4, 6) == [
        "the group's assignment to be stable for a session timeout"]
    assert idle.blockers(state(rebalancing=True), 4, 6) == ["a rebalance to complete"]
    assert idle.blockers(state(joined=False, started=990.0), 4, 6) == ["a first assignment from the consumer group"]
    asked = []
    idle.blockers(state(filing=True, caught_up=lambda: asked.append(1) or True), 4, 6)
    assert asked == []  # the broker is asked only when nothing else blocks


def test_assignment_applies_listener_events_in_order_on_the_loop():
    clock = Clock()
    m = Membership(30, clock)
    a = Assignment(m, clock)
    listener = a.listener()
    tp0, tp1 = TopicPartition("t", 0), TopicPartition("t", 1)
    listener.on_partitions_assigned({tp0, tp1})
    assert not m.lost() and a.owned == set()  # nothing applied until the loop does it
    seen = []
    a.apply(lambda tps: seen.append(("revoke", tps)), lambda tps: seen.append(("assign", tps)))
    assert seen == [("assign", {tp0, tp1})] and a.owned == {tp0, tp1} and a.reset_needed == {tp0, tp1}
    assert a.joined and not a.settled()  # positions still to be reset
    a.reset_needed.clear()
    assert a.settled()
    listener.on_partitions_revoked({tp1})
    assert not a.settled()
    clock.t += 31
    assert m.lost()  # revoked and nothing assigned since
    listener.on_partitions_assigned({tp0})
    a.apply(lambda tps: seen.append(("revoke", tps)), lambda tps: seen.append(("assign", tps)))
    assert seen[1:] == [("revoke", {tp1}), ("assign", {tp0})] and a.owned == {tp0} and not m.lost()


def test_leader_aware_assignor_knows_whether_it_led_the_last_assignment():
    from kafka.cluster import ClusterMetadata

    from service import broker
    from service.assignment import leader_aware

    for name in ("range", "roundrobin", "cooperative-sticky"):
        a = leader_aware(broker.assignors(name)[0])
        assert a.name == name and not a.leader
        a.on_assignment(None, 1) if name != "cooperative-sticky" else None
        assert not a.leader  # a follower: on_assignment without assign
    a = leader_aware(broker.assignors("range")[0])
    a.assign(ClusterMetadata(), {})
    a.on_assignment(None, 2)
    assert a.leader
    a.on_assignment(None, 3)
    assert not a.leader  # the next generation was computed elsewhere


def test_idle_exit_makes_the_leader_wait_a_grace_and_gives_up_past_the_timeout():
    clock = Clock(1000.0)
    st = {"s": state(now=1000.0)}
    leads = {"v": True}
    rule = idle.IdleExit(4, 900, 6, leader_grace=3, state=lambda: st["s"], leads=lambda: leads["v"], clock=clock)
    assert not rule.done()  # the leader starts its grace
    clock.t += 2
    assert not rule.done()
    st["s"] = state(now=1002.0, rebalancing=True)  # a follower left: a rebalance began
    assert not rule.done() and rule.exit_after is None
    st["s"] = state(now=1010.0)
    clock.t = 1010.0
    assert not rule.done()
    clock.t += 3
    assert rule.done()  # stable through the whole grace
    leads["v"] = False
    assert idle.IdleExit(4, 900, 6, 3, lambda: state(), lambda: False, clock).done()  # a follower leaves at once
    assert not rule.given_up(last_activity=clock.t - 899) and rule.given_up(last_activity=clock.t - 901)
    assert not idle.IdleExit(None, 900, 6, 3, lambda: state(), lambda: False, clock).done()


def test_rebalancer_drops_revoked_batches_and_rejoins_when_out_of_the_group():
    from service.batching import Batcher, Record
    from service.events import Decision
    from service.metrics import Metrics
    from tests.helpers import FakeLedger

    clock = Clock()
    m = Membership(30, clock)
    a = Assignment(m, clock)
    batcher = Batcher(500, FakeLedger())
    batcher.add(Record("t", 0, 0, 0), Decision("d1", "LA", "B", "dismiss_and_seal", {"decision_id": "d1"}))
    forgotten, renewed, commits_asked = [], [], []

    class Consumer:
        broken = False

        def renew(self):  # as GroupConsumer.renew: a new client subscribes
            renewed.append(1)
            m.subscribed()

    class Ledger:
        def forget(self, court=None):
            pass

    from service.rebalance import Rebalancer

    from service.filer import Filer

    filer = Filer(1, lambda item: None, None, None, Metrics())
    r = Rebalancer(a, Consumer(), batcher, Ledger(), FilingPool(1, lambda sb: None), filer, Metrics(),
                   threading.Event(), 1.0, reap=lambda: None, commit=lambda: commits_asked.append(1),
                   forget=forgotten.append, active=lambda: None, decisions_topic="t")
    tp = TopicPartition("t", 0)
    a.listener().on_partitions_assigned({tp})
    r.apply()
    assert a.owned == {tp}
    a.listener().on_partitions_revoked({tp})
    r.apply()
    assert batcher.open_batches() == [] and forgotten == [tp] and commits_asked == [1]
    r.rejoin_if_needed()
    assert renewed == []  # revoked a moment ago: not yet out of the group
    clock.t += 31
    r.rejoin_if_needed()
    assert renewed == [1] and not m.lost()  # a new consumer starts a new wait


def test_a_completed_join_without_partitions_is_in_the_group():
    """Under cooperative-sticky the listener hears only of partitions added or revoked: a member
    left with none must still count as in its group (ready, not rejoining)."""
    from service import broker
    from service.assignment import leader_aware

    clock = Clock()
    m = Membership(30, clock)
    a = Assignment(m, clock, incremental=True)
    clock.t += 31
    assert m.lost()  # subscribed, nothing heard for longer than the bound
    a.join_completed()  # what the assignor's on_assignment calls, for every member, partitions or not
    assert not m.lost() and a.completed
    called = []
    range_assignor = leader_aware(broker.assignors("range")[0], joined=lambda: called.append(1))
    range_assignor.on_assignment(None, 5)
    assert called == [1]


def test_a_bundle_queued_twice_is_filed_by_one_thread_at_a_time():
    """Two work records of one bundle (a composer killed between its work record and its
    marker) are never filed at once: the second waits for the first, then runs."""
    import json

    from service.batching import Record
    from service.filer import Filer, Result
    from service.metrics import Metrics
    from tests.helpers import wait_for

    release, running, peak = threading.Event(), [], []

    def file(item):
        running.append(item.bundle_id)
        peak.append(running.count(item.bundle_id))
        release.wait(5)
        running.remove(item.bundle_id)
        return Result(None)

    filer = Filer(3, file, None, None, Metrics())
    filer.assign(0)
    for offset, bundle in enumerate(["b1", "b1", "b2"]):
        value = json.dumps({"format": 1, "bundle_id": bundle, "court_code": "SF", "batch": f"_work/SF/{bundle}.batch.json",
                            "sha256": "0"}).encode()
        filer.take(Record("work", 0, offset, 0, bundle.encode(), value, ()))
    assert sorted(i.bundle_id for i in filer.pool.batches()) == ["b1", "b2"] and len(filer.backlog) == 1
    release.set()
    wait_for(lambda: (filer.reap(), not filer.working())[1], timeout=10, every=0.01)
    assert max(peak) == 1
