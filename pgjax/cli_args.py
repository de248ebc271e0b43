"""Argument parsing shared by the ``pgjax`` commands: one-line argparse errors, the checked
types of the count, seed and number flags, ``--set key=value`` overrides and ``--grid
key=v1,v2`` values. Every refusal is one line naming the flag, the value and what is allowed."""

from __future__ import annotations

import argparse
import math

from pgjax.checks import INT32_MAX, SEED_RANGE

__all__ = ["FLAG_TYPES", "OneLineParser", "check_flag_types", "check_process_flags", "count",
           "literal", "number", "parse_grid", "parse_sets"]


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``pgjax train: error: ...``, exit 2
    (no usage block; ``--help`` shows it)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def _parse_number(text: str):
    """``"4"`` → 4, ``"1e6"`` → 1000000 (an integral float is an int), ``"0.5"`` → 0.5,
    ``"abc"`` → None."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else value


def count(low: int = 1, high: int = INT32_MAX):
    """An argparse type: an integer from ``low`` to ``high`` (``1e6`` notation accepted)."""

    def parse(text: str) -> int:
        value = _parse_number(text)
        if isinstance(value, int) and low <= value <= high:
            return value
        allowed = f"a positive integer (at most {high})" if low == 1 else \
            f"an integer from {low} to {high}"
        raise argparse.ArgumentTypeError(f"{text!r} must be {allowed}")

    parse.__name__ = "count"
    return parse


def number(low: float = 0.0, *, strict: bool = False, finite: bool = True):
    """An argparse type: a number ≥ ``low`` (> when ``strict``), finite unless ``finite=False``;
    never NaN."""

    def parse(text: str) -> float:
        value = float("nan") if _parse_number(text) is None else float(_parse_number(text))
        if not math.isnan(value) and (value > low if strict else value >= low) and not (
                finite and math.isinf(value)):
            return value
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a {'finite ' if finite else ''}number {'>' if strict else '≥'} "
            f"{low:g}")

    parse.__name__ = "number"
    return parse


#: flag destination → its checked type, on every command that has the flag
FLAG_TYPES = {
    "seeds": count(), "seed": count(*SEED_RANGE), "total_timesteps": count(),
    "episodes": count(), "num_chunks": count(), "num_processes": count(),
    "process_id": count(0), "local_processes": count(),
    "checkpoint_every": number(finite=False), "checkpoint_every_updates": count(),
    "keep_checkpoints": count(),
    "generations": count(), "population": count(), "inner_seeds": count(),
    "drift_hidden": count(), "fitness_updates": count(),
    "sigma": number(strict=True), "learning_rate": number(strict=True),
    "init_scale": number(),
}


def check_flag_types(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` (and its subcommands) with the types of :data:`FLAG_TYPES`."""
    for action in parser._actions:  # noqa: SLF001 - argparse exposes no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for sub in action.choices.values():
                check_flag_types(sub)
        elif action.option_strings and action.dest in FLAG_TYPES:
            action.type = FLAG_TYPES[action.dest]
    return parser


def check_process_flags(args) -> None:
    """``pgjax sweep``'s multi-process flags agree: ``--process-id`` below
    ``--num-processes``."""
    if args.process_id is not None and args.num_processes is not None and \
            args.process_id >= args.num_processes:
        raise ValueError(f"--process-id: {args.process_id} must be below --num-processes "
                         f"{args.num_processes} (0 to {args.num_processes - 1})")


def literal(text: str):
    """``"3"`` → 3, ``"0.5"`` → 0.5, ``"true"`` → True; anything else stays a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _key_value(flag: str, item: str, form: str) -> tuple[str, str]:
    """``item`` split at its first ``=``; refused without one or with an empty key."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{flag}: {item!r} is not of the form {form}")
    return key.strip(), value.strip()


def parse_sets(items):
    """``key=value`` overrides; ``env.name=value`` goes to ``env_kwargs`` (e.g. a Brax
    ``env.backend=spring``)."""
    overrides, env_kwargs = {}, {}
    for item in items:
        key, value = _key_value("--set", item, "key=value")
        if key.startswith("env."):
            if not key.removeprefix("env."):
                raise ValueError(f"--set: {item!r} names no env parameter (env.NAME=VALUE)")
            env_kwargs[key.removeprefix("env.")] = literal(value)
        else:
            overrides[key.replace("-", "_")] = value
    if env_kwargs:
        overrides["env_kwargs"] = env_kwargs
    return overrides


def parse_grid(items) -> dict:
    """``--grid key=v1,v2,...`` items as ``{key: [v1, v2, ...]}``; a key without values is
    refused (an empty grid would run nothing)."""
    grid = {}
    for item in items:
        key, values = _key_value("--grid", item, "key=v1,v2,...")
        values = [v.strip() for v in values.split(",") if v.strip()]
        if not values:
            raise ValueError(f"--grid: {item!r} has no values; allowed: key=v1,v2,...")
        grid[key.replace("-", "_")] = values
    return grid
