"""membership: a worker out of its group, or whose loop stopped turning, is noticed within the
bound and acted on once (issue 19). Driven by a fake clock."""

from service.membership import LoopWatch, Membership


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_out_of_group_after_revocation_without_assignment():
    clock = Clock()
    m = Membership(30, clock)
    assert m.out_for() == 0 and not m.lost()  # just subscribed
    m.assigned()
    clock.t += 100
    assert m.out_for() == 0 and not m.lost()  # in the group, however long
    m.revoked()
    clock.t += 29
    assert not m.lost()
    m.revoked()  # a second revocation does not restart the wait
    clock.t += 2
    assert m.lost() and m.out_for() == 31
    m.assigned()  # an assignment (even an empty one) ends it
    assert not m.lost()


def test_never_assigned_after_subscribing_is_lost_too():
    clock = Clock()
    m = Membership(30, clock)
    clock.t += 31
    assert m.lost()
    m.subscribed()  # a new consumer starts a new wait
    assert not m.lost()


def test_watchdog_unblocks_once_then_gives_up_once():
    clock, calls = Clock(), []
    w = LoopWatch(30, unblock=lambda why: calls.append(("unblock", why)),
                  give_up=lambda why: calls.append(("give_up", why)), clock=clock)
    w.entering("KafkaConsumer.poll")
    clock.t += 29
    w.check()
    assert calls == []
    clock.t += 2
    w.check()
    w.check()
    assert [c[0] for c in calls] == ["unblock"] and "KafkaConsumer.poll" in calls[0][1]
    clock.t += 30
    w.check()
    w.check()
    assert [c[0] for c in calls] == ["unblock", "give_up"]


def test_a_turning_loop_is_never_touched():
    clock, calls = Clock(), []
    w = LoopWatch(30, unblock=calls.append, give_up=calls.append, clock=clock)
    for _ in range(100):
        clock.t += 5
        w.turned()
        w.check()
    assert calls == []
