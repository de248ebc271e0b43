"""Checking what a user hands in, on the host, before anything is compiled or written: counts,
seeds, numbers, mappings and lists of names, YAML spec files and the keys of a sweep spec. Each
failure is one ``ValueError`` line of the form ``KEY: VALUE is WHAT; allowed: ...``.

Counts are bounded by what the program holds: update and env-step counters are int32 inside
the jitted program, and the metrics history (``[runs, updates]`` per metric) lives in host
memory (:func:`check_history`).
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path

__all__ = ["INT32_MAX", "SEED_RANGE", "SPEC_KEYS", "check_count", "check_history",
           "check_mapping", "check_meta_spec", "check_names", "check_number", "check_seed",
           "check_spec_values", "host_memory", "is_integer", "read_json", "read_spec_file"]

INT32_MAX = 2**31 - 1  #: the largest count the program holds (int32 counters)
SEED_RANGE = (-2**63, 2**63 - 1)  #: what ``jax.random.key(seed)`` takes
#: the keys of a sweep spec (:class:`pgjax.sweeps.SweepSpec`)
SPEC_KEYS = ("algos", "envs", "seeds", "seed", "grid", "list", "set", "num_chunks", "metrics",
             "sinks", "checkpoint")


def is_integer(value) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and \
        type(value).__name__ != "bool_"


def check_count(name: str, value, low: int = 1, high: int = INT32_MAX) -> int:
    """``value`` as an int in ``[low, high]``, or a one-line refusal naming ``name``."""
    if not is_integer(value) or not low <= value <= high:
        allowed = f"a positive integer (at most {high})" if low == 1 else \
            f"an integer from {low} to {high}"
        raise ValueError(f"{name}: {value!r} must be {allowed}")
    return int(value)


def check_seed(name: str, value) -> int:
    """A base random seed: an integer that ``jax.random.key`` takes."""
    return check_count(name, value, *SEED_RANGE)


def check_number(name: str, value, low: float = 0.0, *, strict: bool = False,
                 finite: bool = True) -> float:
    """A real number ≥ ``low`` (> ``low`` when ``strict``), finite unless ``finite=False``;
    NaN is always refused."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not (
        math.isnan(value) or (finite and math.isinf(value)))
    if not ok or not (value > low if strict else value >= low):
        allowed = f"a {'finite ' if finite else ''}number {'>' if strict else '≥'} {low:g}"
        raise ValueError(f"{name}: {value!r} is not allowed; allowed: {allowed}")
    return float(value)


def check_mapping(name: str, value, example: str = "{learning_rate: 3.0e-4}", *,
                  none_ok: bool = True) -> dict:
    """A mapping with string keys (``None``, where ``none_ok``, is the empty mapping)."""
    if value is None and none_ok:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{name}: {value!r} is not a mapping; allowed: a mapping of names "
                         f"to values, e.g. {example}")
    return dict(value)


def check_names(name: str, value, known=None) -> tuple:
    """A name or a list of names (strings), each one of ``known`` when given."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{name}: {value!r} is not allowed; allowed: a name or a list of "
                         "names" + (f" from {', '.join(known)}" if known else ""))
    for n in names:
        if known is not None and n not in known:
            raise ValueError(f"{name}: {n!r} is not known; allowed: {', '.join(known)}")
    return tuple(names)


def read_spec_file(path, name: str = "spec") -> dict:
    """The mapping a YAML spec file holds (an empty file: ``{}``); a missing or unreadable
    file, malformed YAML or a document that is not a mapping is refused in one line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        what = "a directory" if path.is_dir() else "missing"
        raise ValueError(f"{name}: {str(path)!r} is {what}; allowed: a YAML spec file")
    try:
        values = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ValueError(f"{name}: {str(path)!r} is not valid YAML: {problem}{where}"
                         ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{name}: {str(path)!r} cannot be read: "
                         f"{getattr(error, 'strerror', None) or error}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{name}: {str(path)!r} holds a YAML {type(values).__name__}, not a "
                         f"mapping; allowed: a mapping of spec keys ({', '.join(SPEC_KEYS)})")
    return values


def _algos(value) -> dict:
    """``algos``: a name, a list of names, or a mapping of names to their overrides."""
    if isinstance(value, dict):
        check_names("algos", list(value))
        return {a: check_mapping(f"algos.{a}", o) for a, o in value.items()}
    return {a: {} for a in check_names("algos", value)}


def _grid(value) -> dict:
    """``grid``: a mapping of names to a value or a non-empty list of values."""
    grid = check_mapping("grid", value, "{learning_rate: [1.0e-4, 3.0e-4]}")
    out = {}
    for key, values in grid.items():
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values:
            raise ValueError(f"grid.{key}: [] is empty; allowed: a value or a non-empty list "
                             "of values")
        out[key] = values
    return out


def _points(value) -> tuple:
    """``list``: explicit hyperparameter points, a list of mappings."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"list: {value!r} is not a list; allowed: a list of mappings, e.g. "
                         "[{gamma: 0.99}, {gamma: 0.999}]")
    return tuple(check_mapping(f"list[{i}]", e, "{gamma: 0.99}") for i, e in enumerate(value))


def check_spec_values(values, sinks=("tensorboard", "wandb")) -> dict:
    """The keys and values of a sweep spec (a mapping), checked and normalised: ``algos`` a
    mapping of names to overrides, ``envs`` a tuple, ``grid`` lists of values, ``list`` a
    tuple of mappings, ``metrics`` and ``sinks`` tuples of names. ``checkpoint`` is left to
    :func:`pgjax.engine.checkpoint_options`."""
    if not isinstance(values, dict):
        raise ValueError(f"sweep: the spec {values!r} is not a mapping; allowed: a mapping of "
                         f"spec keys ({', '.join(SPEC_KEYS)})")
    unknown = [k for k in values if k not in SPEC_KEYS]
    if unknown:
        raise ValueError(f"sweep: unknown spec key {unknown[0]!r} (known: "
                         f"{', '.join(SPEC_KEYS)})")
    for key in ("algos", "envs"):
        if not values.get(key):
            raise ValueError(f"{key}: {values.get(key)!r} is missing or empty; allowed: a "
                             f"name or a list, e.g. {key}: [...]")
    envs = values["envs"]
    if isinstance(envs, dict):
        raise ValueError(f"envs: {envs!r} is a mapping; allowed: an env id or a list of env "
                         "ids, e.g. [CartPole-v1]")
    if not isinstance(envs, (str, list, tuple)):
        envs = [envs]  # one env object (the Python API)
    out = {"algos": _algos(values["algos"]),
           "envs": tuple([envs] if isinstance(envs, str) else envs),
           "seeds": check_count("seeds", values.get("seeds", 1)),
           "seed": check_seed("seed", values.get("seed", 0)),
           "grid": _grid(values.get("grid")), "list": _points(values.get("list")),
           "set": check_mapping("set", values.get("set"), "{total_timesteps: 500000}"),
           "num_chunks": check_count("num_chunks", values.get("num_chunks", 10)),
           "metrics": check_names("metrics", values.get("metrics") or ()),
           "sinks": check_names("sinks", values.get("sinks") or (), sinks)}
    return out


def host_memory() -> int | None:
    """This machine's physical memory in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_history(runs: int, num_updates: int, num_metrics: int, name: str = "total_timesteps",
                  memory: int | None = None) -> None:
    """Refuse a metrics history (``num_metrics`` float32 arrays ``[runs, num_updates]`` on the
    host) larger than half this machine's memory (``memory``: its bytes, default
    :func:`host_memory`)."""
    memory = host_memory() if memory is None else memory
    need = 4 * runs * num_updates * num_metrics
    if memory and need > memory // 2:
        raise ValueError(f"{name}: {runs} runs × {num_updates} updates × {num_metrics} metrics "
                         f"is {need / 2**30:.1f} GiB of metrics history on the host; allowed: "
                         f"at most {memory / 2**31:.1f} GiB (half this machine's memory): "
                         "fewer seeds or updates")


def _check_pair(name: str, value) -> None:
    """A score range ``(low, high)`` of finite numbers with ``low < high``."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
        for v in value)
    if not ok or not value[0] < value[1]:
        raise ValueError(f"{name}: {value!r} is not allowed; allowed: (low, high), finite "
                         "numbers with low < high")


def check_meta_spec(spec) -> None:
    """The fields of a :class:`pgjax.meta.MetaSpec`: kinds, counts, the ES step sizes and
    decays, the score ranges of ``normalize`` (one per env, ``low < high``)."""
    if not isinstance(spec.algo, str):
        raise ValueError(f"meta: algo: {spec.algo!r} is not an algorithm name")
    envs = spec.envs
    if isinstance(envs, str) or not isinstance(envs, (list, tuple)) or not all(
            isinstance(e, str) for e in envs):
        raise ValueError(f"meta: envs: {envs!r} is not allowed; allowed: a list of env ids, "
                         "e.g. ('CartPole-v1',)")
    for name in ("generations", "population_size", "inner_seeds"):
        check_count(f"meta: {name}", getattr(spec, name))
    check_seed("meta: seed", spec.seed)
    check_mapping("meta: set", spec.set, "{total_timesteps: 131072}", none_ok=False)
    check_mapping("meta: strategy_kwargs", spec.strategy_kwargs, "{}", none_ok=False)
    if not isinstance(spec.strategy, str):
        raise ValueError(f"meta: strategy: {spec.strategy!r} is not a strategy name")
    for name in ("sigma", "learning_rate"):
        check_number(f"meta: {name}", getattr(spec, name), strict=True)
        check_number(f"meta: {name}_min", getattr(spec, f"{name}_min"))
        decay = getattr(spec, f"{name}_decay")
        if check_number(f"meta: {name}_decay", decay, strict=True) > 1:
            raise ValueError(f"meta: {name}_decay: {decay!r} is not allowed; allowed: a "
                             "number in (0, 1]")
    check_number("meta: init_scale", spec.init_scale)
    normalize = check_mapping("meta: normalize", spec.normalize, "{CartPole-v1: [0, 500]}",
                              none_ok=False)
    for env, bounds in normalize.items():
        if env not in envs:
            raise ValueError(f"meta: normalize: {env!r} is not one of the envs; allowed: "
                             f"{', '.join(envs)}")
        _check_pair(f"meta: normalize.{env}", bounds)


def read_json(path, name: str) -> dict:
    """The mapping a JSON file that pgjax wrote holds; a damaged one (not JSON, not a mapping)
    is refused in one line naming it."""
    import json

    try:
        values = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{name}: {path} is damaged (not JSON: {error}); allowed: the file "
                         "pgjax wrote") from None
    if not isinstance(values, dict):
        raise ValueError(f"{name}: {path} is damaged (a JSON {type(values).__name__}, not a "
                         "mapping); allowed: the file pgjax wrote")
    return values
