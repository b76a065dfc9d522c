"""Which stack holds which repository, when one stack cannot hold them all.

Pure: no I/O. A stack holds at most 500 resources; past `stack.scale.repositories_per_stack`
repositories the config's repositories are spread over a set of stacks named from `stack.name`:
the first is `stack.name` itself, then `<name>-2`, `<name>-3`, and so on.

The rule (`assign`): a repository that a stack of the set holds stays in that stack; every other
one, in the order of the names, goes to the first stack with room, and a new stack is added
when none has any. Repositories are `Retain`: moving one from a stack to another would mean
removing it from the first (it stays in ECR) and importing it into the second, which
CloudFormation does not do in one change set. With this rule, adding or removing images never
moves a repository; a stack that some removals left with room takes the next additions.
The rule needs the set's deployed templates; without them (`mirror template`, a first
deployment) the stacks are filled in the order of the names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from mirror.config import Config
from mirror.errors import ConfigError

MAX_STACK_NAME = 128  # CloudFormation's limit on a stack's name


def member_name(base: str, index: int) -> str:
    """The name of the set's stack number `index` (0: `base` itself, 1: `base-2`...)."""
    return base if index == 0 else f"{base}-{index + 1}"


def member_index(base: str, name: str) -> int | None:
    """The index of the stack `name` in the set `base`, or None when it is not one of it."""
    if name == base:
        return 0
    number = name.removeprefix(f"{base}-")
    if number != name and number.isdigit() and not number.startswith("0") and int(number) > 1:
        return int(number) - 1
    return None


def assign(wanted: Sequence[str], held: Mapping[str, int], capacity: int) -> list[list[str]]:
    """The repositories of each stack of the set, each list sorted.

    `held` maps a repository to the index of the stack that holds it now; those not `wanted`
    leave their stack. A stack of the set that ends up with no repository keeps its place
    (an empty list), so that the names of the others do not change.
    """
    count = max(held.values(), default=0) + 1
    stacks: list[list[str]] = [[] for _ in range(count)]
    names = sorted(set(wanted))
    for name in names:
        if name in held:
            stacks[held[name]].append(name)
    for name in names:
        if name in held:
            continue
        room = next((i for i, stack in enumerate(stacks) if len(stack) < capacity), None)
        if room is None:
            stacks.append([])
            room = len(stacks) - 1
        stacks[room].append(name)
    return [sorted(stack) for stack in stacks]


def split_config(config: Config, held: Mapping[str, int]) -> list[Config]:
    """One config per stack of the set: its name and its share of the images. The registry's
    replication (one per registry) goes with the first stack only: two stacks holding it would
    overwrite each other."""
    by_repository = {image.target_repository: image for image in config.images}
    shares = assign(list(by_repository), held, config.stack.scale.repositories_per_stack)
    last = member_name(config.stack.name, len(shares) - 1)
    if len(last) > MAX_STACK_NAME:
        raise ConfigError(
            f"{config.path}: stack.name {config.stack.name!r}: its repositories take"
            f" {len(shares)} stacks, and the last one's name {last!r} is over"
            f" CloudFormation's {MAX_STACK_NAME} characters: shorten stack.name"
        )
    return [
        dataclasses.replace(
            config,
            stack=config.stack.model_copy(
                update={
                    "name": member_name(config.stack.name, index),
                    **({"replication": None} if index else {}),
                }
            ),
            images=tuple(by_repository[name] for name in share),
        )
        for index, share in enumerate(shares)
    ]
