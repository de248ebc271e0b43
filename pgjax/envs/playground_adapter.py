"""MuJoCo Playground environments (``make("playground/<Name>")``, the ``playground`` extra)
under the pgjax protocol.

Playground's training wrapper (Brax's ``EpisodeWrapper`` + ``AutoResetWrapper``) replaces the
observation of a time-limit step by the reset's, so a truncation cannot be bootstrapped
(mujoco_playground#305, brax#641). pgjax steps the raw ``MjxEnv`` instead: ``truncated`` once
``episode_length`` env steps have been taken (Playground's ``info["truncation"]``),
``terminated`` only for the env's own ``done`` (a true terminal), and
:class:`pgjax.envs.AutoReset` draws a fresh reset per episode and hands back the true final
observation in ``info["final_observation"]``.

Physics: ``impl="jax"`` (MJX's pure-JAX implementation) by default, so that seeds and
hyperparameter grids ``vmap``; Playground 0.2's own default for many tasks is ``"warp"``,
whose kernels do not batch under ``vmap`` of whole training runs — pass ``impl="warp"`` to
ask for it (with ``PGJAX_MJX_WARP=1`` set: pgjax imports MJX without its Warp backend
otherwise, :func:`pgjax.extras.without_warp`). ``episode_length`` and ``action_repeat``
default to the task's config; other keyword arguments override fields of it
(``config_overrides``). The physics runs at full float32 matmul precision on GPUs
(``matmul_precision``, :mod:`pgjax.envs.brax_adapter`'s docstring).

Observations: the DM Control Suite tasks return one flat array. Tasks with dict observations
(locomotion, manipulation) give the policy ``obs[observation_key]`` (``"state"`` by default).
``critic_observation_key="privileged_state"`` makes the actor-critic asymmetric, as
Playground's own PPO trains those tasks: the observation is then ``obs[observation_key]``
followed by ``obs[critic_observation_key]`` (both flattened; normalised together), the env
declares ``policy_observation_size`` (the first part's length), the actor reads only that
part and the critic all of it — the privileged simulator state helps the value function and
is never needed to act. A trained policy is evaluated on the same concatenated observations.
The locomotion and manipulation tasks download mujoco_menagerie (a git clone) at their first
load (:func:`downloads_models` says which); CI uses DM Control only.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping

import jax.numpy as jnp

from pgjax.envs.brax_adapter import PHYSICS_PRECISION, BraxEnv, BraxState, check_precision
from pgjax.envs.core import AutoReset
from pgjax.extras import install_hint, quiet_import, without_warp

DEFAULT_IMPL = "jax"
INSTALL_HINT = ("MuJoCo Playground environments need the playground extra: "
                f"{install_hint('playground')}")


def _import_registry():
    if importlib.util.find_spec("mujoco_playground") is None:
        raise ImportError(INSTALL_HINT)
    with quiet_import(), without_warp():  # MJX's noise, and its Warp backend (pgjax.extras)
        from mujoco_playground import registry

    return registry


def playground_families() -> dict[str, tuple[str, ...]]:
    """Playground's task names per suite (empty when the extra is not installed)."""
    if importlib.util.find_spec("mujoco_playground") is None:
        return {}
    registry = _import_registry()
    return {suite: tuple(getattr(registry, suite).ALL_ENVS)
            for suite in ("dm_control_suite", "locomotion", "manipulation")}


def playground_ids() -> list[str]:
    """Every Playground task name (empty when the extra is not installed)."""
    return sorted(name for names in playground_families().values() for name in names)


def downloads_models(name: str) -> bool:
    """Whether loading ``name`` first downloads mujoco_menagerie (locomotion, manipulation)."""
    return name not in playground_families().get("dm_control_suite", ())


class PlaygroundEnv(BraxEnv):
    """A Playground ``MjxEnv`` without auto-reset (:class:`pgjax.envs.brax_adapter.BraxEnv`'s
    time limit), ``action_repeat`` physics steps per action (rewards summed, as Playground's
    wrapper does), the policy's key of a dict observation (and the critic's privileged one
    after it, with ``critic_observation_key``: module docstring)."""

    def __init__(self, env, name: str, episode_length: int, action_repeat: int = 1,
                 observation_key: str = "state", matmul_precision: str = PHYSICS_PRECISION,
                 critic_observation_key: str | None = None):
        self.action_repeat = int(action_repeat)
        self.observation_key = observation_key
        self.critic_observation_key = critic_observation_key
        super().__init__(env, name, episode_length, matmul_precision)
        if critic_observation_key is not None:
            #: the actor's share of each observation (its leading features)
            self.policy_observation_size = math.prod(
                self.raw_observation[observation_key].shape)

    def observation(self, raw_obs):
        keys = [("observation_key", self.observation_key)]
        if self.critic_observation_key is not None:
            keys.append(("critic_observation_key", self.critic_observation_key))
        if not isinstance(raw_obs, Mapping):
            if len(keys) > 1:
                raise ValueError(f"critic_observation_key: {self.name}'s observation is one "
                                 "array, not a dict with a privileged part")
            return raw_obs
        for field, key in keys:
            if key not in raw_obs:
                raise ValueError(f"{field}: {key!r} is not one of {self.name}'s observation "
                                 f"keys ({', '.join(raw_obs)})")
        if len(keys) == 1:
            return raw_obs[self.observation_key]
        return jnp.concatenate([jnp.ravel(raw_obs[key]) for _, key in keys])

    def step(self, key, state, action):
        del key  # MJX dynamics are deterministic
        playground_state, reward = state.brax_state, jnp.zeros((), jnp.float32)
        for _ in range(self.action_repeat):
            with self.physics():
                playground_state = self.brax_env.step(playground_state, action)
            reward = reward + playground_state.reward
        steps = state.steps + self.action_repeat
        obs = self.observation(playground_state.obs)
        terminated = jnp.asarray(playground_state.done) > 0.5
        truncated = steps >= self.episode_length
        return (BraxState(playground_state, steps), obs, reward.astype(jnp.float32), terminated,
                truncated, {"final_observation": obs})

    def __repr__(self):
        return f"PlaygroundEnv({self.name})"


def make_playground(name: str, impl: str = DEFAULT_IMPL, episode_length: int | None = None,
                    action_repeat: int | None = None, observation_key: str = "state",
                    critic_observation_key: str | None = None,
                    matmul_precision: str = PHYSICS_PRECISION, **config_overrides) -> AutoReset:
    """``playground/<name>`` with pgjax's auto-reset (module docstring)."""
    registry = _import_registry()
    if name not in playground_ids():
        raise ValueError(f"env: unknown Playground environment {name!r} "
                         f"(known: {', '.join(playground_ids())})")
    config = registry.get_default_config(name)
    episode_length = config.episode_length if episode_length is None else episode_length
    action_repeat = config.get("action_repeat", 1) if action_repeat is None else action_repeat
    for field, value in (("episode_length", episode_length), ("action_repeat", action_repeat)):
        if int(value) < 1 or int(value) != value:
            raise ValueError(f"{field}: {value} must be a positive integer")
    check_precision(matmul_precision)
    with quiet_import(capture_output=False):  # (a model download prints its progress)
        env = registry.load(name, config_overrides={"impl": impl, **config_overrides})
    return AutoReset(PlaygroundEnv(env, f"playground/{name}", int(episode_length),
                                   int(action_repeat), observation_key, matmul_precision,
                                   critic_observation_key))
