"""Issue 16: both topics committed in one request (offsets.Committer), each through its own
CommitPolicy: owned partitions only, only forward, never before the dead letters are settled,
and nothing recorded as committed when the group refuses the commit."""

from __future__ import annotations

from service.offsets import Committer

D, W = "eligibility.decided", "reliefdocs.filing.work"


class Group:
    """What the Committer asks of the worker: offsets, ownership, dead letters, the consumer."""

    def __init__(self):
        self.committable = {D: {0: 5, 1: 7}, W: {0: 3, 2: 9}}
        self.owned = {D: {0, 1}, W: {0, 2}}
        self.settled = True
        self.refuse: Exception | None = None
        self.sent: list[dict] = []
        self.errors: list[Exception] = []
        self.settle_calls: list[float] = []

    def settle(self, seconds: float) -> bool:
        self.settle_calls.append(seconds)
        return self.settled

    def send(self, offsets: dict) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append(offsets)

    def committer(self, **kw) -> Committer:
        c = Committer([D, W], lambda: self.committable, lambda: self.owned, self.settle, self.send, metrics=self, **kw)
        self.policies = c.policies
        return c

    def retried(self, dependency: str) -> None:  # the metrics the Committer reports to
        self.errors.append(dependency)

    def answered(self, dependency: str) -> None:
        pass


def test_both_topics_in_one_request():
    g = Group()
    g.committer()(force=True)
    assert g.sent == [{D: {0: 5, 1: 7}, W: {0: 3, 2: 9}}]
    assert g.policies[D].committed == {0: 5, 1: 7} and g.policies[W].committed == {0: 3, 2: 9}


def test_only_owned_partitions_and_only_forward():
    g = Group()
    commit = g.committer()
    g.owned = {D: {0}, W: {2}}
    commit(force=True)
    assert g.sent == [{D: {0: 5}, W: {2: 9}}]
    g.owned = {D: {0, 1}, W: {0, 2}}
    g.committable = {D: {0: 5, 1: 6}, W: {0: 4, 2: 8}}  # 0 of D no further; 2 of W backwards
    commit(force=True)
    assert g.sent[-1] == {D: {1: 6}, W: {0: 4}}
    commit(force=True)
    assert len(g.sent) == 2  # nothing new: no request at all
    g.owned = {D: {0, 1}}  # no work partition owned (a compose-only worker)
    g.committable = {D: {0: 8, 1: 6}, W: {0: 10}}
    commit(force=True)
    assert g.sent[-1] == {D: {0: 8}}


def test_nothing_before_the_dead_letters_are_settled():
    g = Group()
    commit = g.committer()
    g.settled = False
    commit(force=True, settle_seconds=2.5)
    assert g.sent == [] and g.settle_calls == [2.5]
    assert g.policies[D].committed == {} and g.policies[W].committed == {}
    g.settled = True
    commit(force=True)
    assert len(g.sent) == 1


def test_a_refused_commit_keeps_what_was_committed_and_is_tried_again():
    g = Group()
    commit = g.committer()
    commit(force=True)
    g.committable = {D: {0: 6, 1: 7}, W: {0: 4, 2: 9}}
    g.refuse = RuntimeError("CommitFailedError")
    commit(force=True)
    assert g.errors == ["broker"]  # counted as a retry of the broker
    assert g.policies[D].committed == {0: 5, 1: 7} and g.policies[W].committed == {0: 3, 2: 9}
    g.refuse = None
    commit(force=True)
    assert g.sent[-1] == {D: {0: 6}, W: {0: 4}}


def test_at_most_once_a_second_unless_forced():
    g = Group()
    now = [100.0]
    commit = g.committer(clock=lambda: now[0])
    commit()
    g.committable = {D: {0: 6, 1: 7}, W: {0: 3, 2: 9}}
    commit()  # within the interval: not even the dead letters are asked
    assert len(g.sent) == 1 and len(g.settle_calls) == 1
    commit(force=True)
    assert g.sent[-1] == {D: {0: 6}}
    g.committable = {D: {0: 7, 1: 7}, W: {0: 3, 2: 9}}
    now[0] += 1.0
    commit()
    assert g.sent[-1] == {D: {0: 7}}


def test_a_forgotten_partition_is_committed_again_in_full():
    g = Group()
    commit = g.committer()
    commit(force=True)
    commit.forget(D, 1)
    commit.forget("another.topic", 0)  # not one of ours: nothing to forget
    commit(force=True)
    assert g.sent[-1] == {D: {1: 7}}
