"""The split of the repositories over a set of stacks (pure), and the `stack.scale` keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirror.errors import ConfigError
from mirror.stack.split import assign, member_index, member_name, split_config
from mirror.template import render
from mirror.template_access import REPLICATION_ID
from tests.stack_config import STACK, make_config


def held_by(stacks: list[list[str]]) -> dict[str, int]:
    return {name: index for index, names in enumerate(stacks) for name in names}


def test_stacks_are_named_from_stack_name_and_read_back() -> None:
    assert [member_name("ecr-mirror", i) for i in range(3)] == [
        "ecr-mirror",
        "ecr-mirror-2",
        "ecr-mirror-3",
    ]
    for index in range(12):
        assert member_index("ecr-mirror", member_name("ecr-mirror", index)) == index
    for other in ("ecr-mirror-1", "ecr-mirror-02", "ecr-mirror-x", "ecr-mirrors", "ecr"):
        assert member_index("ecr-mirror", other) is None


def test_a_first_deployment_fills_the_stacks_in_the_order_of_the_names() -> None:
    assert assign(["e", "a", "d", "b", "c"], {}, 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert assign(["a", "b"], {}, 450) == [["a", "b"]]


def test_a_new_repository_goes_to_the_first_stack_with_room_not_by_its_name() -> None:
    held = {"b": 0, "c": 0, "d": 1, "e": 1, "f": 2}
    assert assign(["a", "b", "c", "d", "e", "f"], held, 2) == [
        ["b", "c"],
        ["d", "e"],
        ["a", "f"],
    ]


def test_a_removal_leaves_room_that_the_next_addition_takes() -> None:
    held = {"a": 0, "b": 0, "c": 1}
    assert assign(["b", "c"], held, 2) == [["b"], ["c"]]
    assert assign(["b", "c", "z"], held, 2) == [["b", "z"], ["c"]]


def test_a_stack_left_empty_keeps_its_place_in_the_set() -> None:
    assert assign(["c"], {"a": 0, "b": 0, "c": 1}, 2) == [[], ["c"]]


@given(
    names=st.lists(st.text("abcdefgh", min_size=1, max_size=4), unique=True, max_size=40),
    capacity=st.integers(min_value=1, max_value=7),
    data=st.data(),
)
def test_adding_or_removing_images_never_moves_a_repository(
    names: list[str], capacity: int, data: st.DataObject
) -> None:
    """Deploy the names in any order of arrival, some leaving on the way: every repository
    stays in the stack it was first put in, and no stack holds more than `capacity`."""
    placed: dict[str, int] = {}
    wanted: list[str] = []
    for name in names:
        if wanted and data.draw(st.booleans()):
            wanted.remove(data.draw(st.sampled_from(wanted)))
        wanted.append(name)
        stacks = assign(wanted, placed, capacity)
        now = held_by(stacks)
        assert set(now) == set(wanted)
        assert all(now[kept] == placed[kept] for kept in wanted if kept in placed)
        assert all(len(stack) <= capacity for stack in stacks)
        placed = {**placed, **now}
        placed = {kept: placed[kept] for kept in wanted}


def test_split_config_names_each_stack_and_shares_the_images() -> None:
    config = make_config(["a", "b", "c"], scale={"repositories_per_stack": 2})
    parts = split_config(config, {})
    assert [part.stack.name for part in parts] == [STACK, f"{STACK}-2"]
    assert [[i.target_repository for i in part.images] for part in parts] == [
        ["dockerhub/library/a", "dockerhub/library/b"],
        ["dockerhub/library/c"],
    ]
    assert all(part.stack.iam_user == config.stack.iam_user for part in parts)
    (whole,) = split_config(make_config(["a", "b", "c"]), {})
    assert whole == make_config(["a", "b", "c"])


def test_the_registry_replication_goes_with_the_first_stack_only() -> None:
    replication = [{"region": "eu-west-1"}]
    config = make_config(
        ["a", "b", "c"], scale={"repositories_per_stack": 1}, replication=replication
    )
    parts = split_config(config, {})
    assert [REPLICATION_ID in render(part)["Resources"] for part in parts] == [True, False, False]


@pytest.mark.parametrize(
    ("scale", "problem"),
    [
        (
            {"template_bucket": "My.Bucket"},
            "stack.scale.template_bucket (line 8): 'My.Bucket' is no",
        ),
        ({"template_bucket": "ab"}, "stack.scale.template_bucket (line 8): 'ab' is no S3 bucket"),
        ({"repositories_per_stack": 491}, "stack.scale.repositories_per_stack (line 8): "),
        ({"repositories_per_stack": 0}, "stack.scale.repositories_per_stack (line 8): "),
        ({"bucket": "x"}, "stack.scale.bucket (line 8): unknown key"),
    ],
)
def test_bad_scale_keys_are_one_line_naming_the_key(scale: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_config(["a"], scale=scale)
    assert str(raised.value).startswith(f"images.yaml: {problem}")
    assert "\n" not in str(raised.value)
