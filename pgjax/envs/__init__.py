"""Environments: ``make("gymnax/CartPole-v1")`` (a bare id means gymnax), ``make("brax/hopper")``
(the ``brax`` extra), ``make("playground/CartpoleBalance")`` (the ``playground`` extra,
:mod:`pgjax.envs.playground_adapter`), ``make("craftax/Craftax-Classic-Symbolic-v1")`` (the
``craftax`` extra, :mod:`pgjax.envs.craftax_adapter`), the partially observable
``make("StatelessCartPole-v1")`` (``pomdp/``, :mod:`pgjax.envs.pomdp`), or a user's own env.

See :mod:`pgjax.envs.core` for the protocol every environment follows.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from pgjax.envs.core import (
    AutoReset,
    Box,
    Discrete,
    Environment,
    EpisodeStats,
    EpisodeStatsState,
    Wrapper,
    episode_info,
)
from pgjax.envs.normalize import (
    ENV_AXIS,
    NormalizeObservation,
    NormalizeReward,
    RunningMoments,
)
from pgjax.envs.pomdp import POMDP_IDS, MaskObservation

__all__ = [
    "AutoReset",
    "Box",
    "Discrete",
    "Environment",
    "EpisodeStats",
    "EpisodeStatsState",
    "episode_info",
    "family_episode_info",
    "MaskObservation",
    "Wrapper",
    "ENV_AXIS",
    "NormalizeObservation",
    "NormalizeReward",
    "RunningMoments",
    "make",
    "register",
    "list_envs",
    "canonical_id",
    "is_user_registered",
]

_registry: dict[str, Callable] = {}


def register(env_id: str, factory: Callable) -> None:
    """Register ``factory(**kwargs) -> env`` under ``env_id`` for :func:`make` and the CLI."""
    if env_id in _registry:
        raise ValueError(f"environment id {env_id!r} is already registered")
    _registry[env_id] = factory


def is_user_registered(env_id: str) -> bool:
    """Whether ``env_id`` was added by :func:`register` (its factory is the user's code)."""
    return env_id in _registry


def list_envs() -> list[str]:
    """Every id :func:`make` accepts: the gymnax ids, their stateless (partially observable)
    variants, the Brax, Playground and Craftax ids (when their extras are installed) and the
    registered ones."""
    from pgjax.envs.brax_adapter import brax_ids
    from pgjax.envs.craftax_adapter import craftax_ids
    from pgjax.envs.gymnax_adapter import gymnax_ids
    from pgjax.envs.playground_adapter import playground_ids

    return ([f"gymnax/{i}" for i in gymnax_ids()] + [f"pomdp/{i}" for i in POMDP_IDS]
            + [f"brax/{i}" for i in brax_ids()]
            + [f"playground/{i}" for i in playground_ids()]
            + [f"craftax/{i}" for i in craftax_ids()] + sorted(_registry))


def family_episode_info(env) -> tuple[str, ...]:
    """The :func:`episode_info` of what ``make(env)`` builds, without building it: Craftax's
    ``("achievements",)`` for ``craftax/`` ids, the object's own for an env object, else
    ``()`` (a registered id's factory is not called: its env's ``episode_info`` is not
    reported)."""
    if not isinstance(env, str):
        return episode_info(env)
    from pgjax.envs.craftax_adapter import CraftaxEnv

    return CraftaxEnv.episode_info if env.startswith("craftax/") else ()


def canonical_id(env_id: str) -> str:
    """``"CartPole-v1"`` → ``"gymnax/CartPole-v1"``; raises a ``ValueError`` naming close
    matches for an unknown id. Only ``brax/`` and ``playground/`` ids (or an unknown id)
    import Brax or Playground; nothing here imports Craftax."""
    from pgjax.envs import craftax_adapter
    from pgjax.envs.brax_adapter import brax_ids
    from pgjax.envs.gymnax_adapter import gymnax_ids
    from pgjax.envs.playground_adapter import INSTALL_HINT, playground_ids
    from pgjax.extras import install_hint

    if env_id in _registry:
        return env_id
    family, _, name = env_id.rpartition("/")
    if family == "brax":
        if not brax_ids():
            raise ValueError(f"env: {env_id} needs the brax extra: {install_hint('brax')}")
        if name in brax_ids():
            return env_id
    elif family == "playground":
        if not playground_ids():
            raise ValueError(f"env: {env_id}: {INSTALL_HINT}")
        if name in playground_ids():
            return env_id
    elif family == "craftax":
        if not craftax_adapter.craftax_ids():
            raise ValueError(f"env: {env_id}: {craftax_adapter.INSTALL_HINT}")
        if name in craftax_adapter.NAMES:
            return env_id
    elif family in ("", "gymnax") and name in gymnax_ids():
        return f"gymnax/{name}"
    elif family in ("", "pomdp") and name in POMDP_IDS:
        return f"pomdp/{name}"
    bare = [k.split("/", 1)[1] for k in list_envs() if "/" in k]
    close = difflib.get_close_matches(name, bare, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `pgjax list` shows them all"
    raise ValueError(f"env: unknown environment id {env_id!r}{hint}")


def make(env, **kwargs):
    """An environment following the pgjax protocol.

    Args:
      env: an id (``"gymnax/<id>"``, a bare gymnax id, or one given to :func:`register`), or an
        environment object that already follows the protocol (returned as it is).
      **kwargs: for gymnax ids, fields of the env params to override (e.g.
        ``max_steps_in_episode=200``); for Brax ids, ``backend`` (default ``"generalized"``),
        ``episode_length`` (default 1000) and Brax constructor arguments; for Playground ids,
        ``impl`` (default ``"jax"``), ``episode_length``, ``action_repeat``,
        ``observation_key`` and fields of the task's config; for Craftax ids, ``reset_ratio``
        (envs per fresh world per step, default 64; None: a reset per env) and ``EnvParams``
        fields; for registered ids,
        passed to the factory.
    """
    if not isinstance(env, str):
        if not isinstance(env, Environment):
            raise TypeError(
                f"env: {type(env).__name__} does not follow the pgjax environment protocol "
                "(needs observation_space, action_space, reset(key), step(key, state, action))"
            )
        return env
    env_id = canonical_id(env)
    if env_id in _registry:
        return _registry[env_id](**kwargs)
    family, name = env_id.split("/", 1)
    if family == "brax":
        from pgjax.envs.brax_adapter import make_brax

        return make_brax(name, **kwargs)
    if family == "playground":
        from pgjax.envs.playground_adapter import make_playground

        return make_playground(name, **kwargs)
    if family == "craftax":
        from pgjax.envs.craftax_adapter import make_craftax

        return make_craftax(name, **kwargs)
    if family == "pomdp":
        from pgjax.envs.pomdp import make_pomdp

        return make_pomdp(name, **kwargs)
    from pgjax.envs.gymnax_adapter import make_gymnax

    return make_gymnax(name, **kwargs)
