"""Issue 16's settings: what a worker does (RELIEFDOCS_ROLES) and its work topic, which must be a
topic of its own."""

from __future__ import annotations

import pytest

from service import config


@pytest.mark.parametrize("raw,roles", [
    ("compose", {"compose"}),
    ("file", {"file"}),
    ("compose,file", {"compose", "file"}),
    (" file , compose ", {"compose", "file"}),
    ("", {"compose", "file"}),  # unset: both
])
def test_roles(raw, roles):
    assert config.load({"RELIEFDOCS_ROLES": raw}).roles == frozenset(roles)


def test_both_roles_by_default():
    assert config.load({}).roles == frozenset({"compose", "file"})


@pytest.mark.parametrize("raw", ["bogus", "compose,bogus", ",", "Compose"])
def test_an_unknown_role_names_the_setting(raw):
    with pytest.raises(config.ConfigError) as info:
        config.load({"RELIEFDOCS_ROLES": raw})
    assert info.value.setting == "RELIEFDOCS_ROLES"


@pytest.mark.parametrize("other", ["RELIEFDOCS_DECISIONS_TOPIC", "RELIEFDOCS_NOTIFICATIONS_TOPIC",
                                   "RELIEFDOCS_DLQ_TOPIC"])
def test_the_work_topic_is_a_topic_of_its_own(other):
    with pytest.raises(config.ConfigError) as info:
        config.load({other: "shared.topic", "RELIEFDOCS_WORK_TOPIC": "shared.topic"})
    assert info.value.setting == "RELIEFDOCS_WORK_TOPIC"


def test_the_work_topic_and_its_partitions():
    s = config.load({"RELIEFDOCS_WORK_TOPIC": "filing.work", "RELIEFDOCS_WORK_PARTITIONS": "24"})
    assert (s.work_topic, s.work_partitions) == ("filing.work", 24)
    assert config.load({}).work_topic == "reliefdocs.filing.work"
    with pytest.raises(config.ConfigError) as info:
        config.load({"RELIEFDOCS_WORK_PARTITIONS": "0"})
    assert info.value.setting == "RELIEFDOCS_WORK_PARTITIONS"
