"""Meta-learning drift functions with evolution strategies (evosax).

The outer loop evolves the parameters φ of a learned drift (LPO, TA-LPO, or a user's
``mirror`` drift with parameters); the fitness of a candidate φ is the return at the end of a
*whole inner training run* with that drift (Lu et al., NeurIPS 2022, arXiv 2210.05639;
Jackson et al., ICLR 2024, arXiv 2402.05828). One generation evaluates every population member
(and the ES mean) × ``inner_seeds`` as one compiled program: the inner runs are vmapped over a
leading (member × seed) axis and split across every local device, exactly as a sweep group.

evosax minimises; pgjax hands it ``−fitness`` and reports returns (higher is better).

    from pgjax import meta
    spec = meta.MetaSpec(algo="lpo", envs=("CartPole-v1",), generations=32,
                         population_size=16, inner_seeds=2,
                         set={"total_timesteps": 131_072})
    result = meta.meta_train(spec, out="runs/lpo")      # resumable: run it again to continue
    result.mean_params                                   # the ES mean, a DriftNetParams

Files in ``out``: ``meta.json`` (spec, versions, timings), ``fitness.csv`` (one row per
generation), ``mean.npz`` / ``best.npz`` (drift parameters, :func:`pgjax.drifts.load_params`),
``fitness.png`` and ``checkpoints/`` (the ES state after every generation).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from pgjax import drifts
from pgjax.checkpoint import Checkpointer, CheckpointOptions
from pgjax.checks import check_meta_spec
from pgjax.config import Config, make_config
from pgjax.distributed import over_runs, padded_order, run_devices
from pgjax.engine import CHECKPOINT_DIR, FINAL_WINDOW
from pgjax.keys import typed_key
from pgjax.meta_files import HISTORY, read_spec, write_meta, write_spec
from pgjax.programs import compiler_options
from pgjax.run_lock import run_directory_lock
from pgjax.trainer import make_train

__all__ = ["HISTORY", "MetaResult", "MetaSpec", "final_return", "make_evaluate",
           "make_strategy", "meta_train", "resume_meta"]

@dataclasses.dataclass(frozen=True)
class MetaSpec:
    """An evolution-strategy run over drift parameters.

    The defaults are those of Lu et al. 2022's ``main_drift_brax.py`` (OpenES, σ₀ 0.04 decaying
    ×0.999 to 0.01, Adam lr 0.01 decaying ×0.999 to 1e-3, β₁ 0.99, antithetic sampling, the ES
    mean starting at 0 — i.e. at PPO with ``lpo_ppo_init``), with a smaller population and
    budget that fit a laptop CPU.
    """

    algo: str = "lpo"  #: an algorithm whose drift takes parameters: lpo, talpo or mirror
    envs: tuple = ("CartPole-v1",)  #: inner tasks; several → normalised, averaged fitness
    set: dict = dataclasses.field(default_factory=dict)  #: config overrides of every inner run
    generations: int = 32
    population_size: int = 16  #: even (antithetic pairs)
    inner_seeds: int = 2  #: inner runs per member; the fitness is their mean
    seed: int = 0
    strategy: str = "Open_ES"  #: any evosax distribution-based algorithm
    strategy_kwargs: dict = dataclasses.field(default_factory=dict)
    sigma: float = 0.04  #: Open_ES: initial noise scale
    sigma_decay: float = 0.999
    sigma_min: float = 0.01
    learning_rate: float = 0.01  #: Open_ES: Adam step on the mean
    learning_rate_decay: float = 0.999
    learning_rate_min: float = 1e-3
    #: inner fitness: ``None`` = mean return of the episodes that ended in the last 5% of
    #: updates (as ``pgjax train``'s final return); an int k = in the last k updates
    fitness_updates: int | None = None
    #: env → (low, high): fitness (R − low)/(high − low), averaged over envs; needed for >1 env
    normalize: dict = dataclasses.field(default_factory=dict)
    #: hidden width of the learned (lpo, talpo) drift net to evolve; None = the algorithm's
    #: default (128, Lu et al.). Narrower nets have fewer parameters for the ES to search.
    drift_hidden: int | None = None
    #: std of a normal draw for the initial mean of a learned drift net; 0 = zeros (exactly
    #: PPO with ``lpo_ppo_init``). The net is even in its parameters: f_{−φ} = f_φ, since tanh
    #: is odd, (−w₂)ᵀ tanh(−W₁x) = w₂ᵀ tanh(W₁x). So at φ = 0 each antithetic pair ±σz is one
    #: drift, the ES objective is even and its gradient is 0: a small random start breaks that
    #: symmetry.
    init_scale: float = 0.0

    def __post_init__(self):
        check_meta_spec(self)  # kinds, counts, step sizes, score ranges
        for name in ("generations", "population_size", "inner_seeds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"meta: {name}: {value!r} must be a positive integer")
        if self.strategy == "Open_ES" and self.population_size % 2:
            raise ValueError(f"meta: population_size: {self.population_size} must be even "
                             "(Open_ES samples antithetic pairs)")
        if not self.envs:
            raise ValueError("meta: envs is empty")
        if self.drift_hidden is not None and (
                not isinstance(self.drift_hidden, int) or self.drift_hidden < 1):
            raise ValueError(f"meta: drift_hidden: {self.drift_hidden!r} must be a positive "
                             "integer or None")
        missing = [e for e in self.envs if len(self.envs) > 1 and e not in self.normalize]
        if missing:
            raise ValueError(f"meta: normalize: no (low, high) for {missing[0]!r}; several "
                             "envs need one each to average normalised returns")
        if self.fitness_updates is not None and (
                not isinstance(self.fitness_updates, int) or self.fitness_updates < 1):
            raise ValueError(f"meta: fitness_updates: {self.fitness_updates!r} must be a "
                             "positive integer or None")

    def configs(self) -> list[Config]:
        """The inner config of each env (its ``drift_params`` replaced by each member's)."""
        configs = [make_config(self.algo, env, **self.set) for env in self.envs]
        if configs[0].drift_params is None:
            raise ValueError(f"meta: algo {self.algo!r} has no drift parameters to evolve "
                             "(lpo, talpo, or mirror with drift_params)")
        return configs

    def initial_params(self, config: Config):
        """The initial ES mean: the config's drift parameters or, for the lpo/talpo networks
        with ``drift_hidden`` or ``init_scale`` set, a net of that width drawn at that scale
        (zeros at scale 0) from key ``seed``."""
        params = config.drift_params
        if self.drift_hidden is None and not self.init_scale:
            return params
        if not isinstance(params, drifts.DriftNetParams):
            raise ValueError("meta: drift_hidden and init_scale apply to the lpo and talpo "
                             "drift networks")
        hidden = self.drift_hidden or params.w_hidden.shape[1]
        key = jax.random.fold_in(jax.random.key(self.seed), 2**31 - 1) \
            if self.init_scale else None
        init = drifts.init_talpo if params.w_hidden.shape[0] == drifts.TALPO_FEATURES else drifts.init_lpo
        return init(key, scale=self.init_scale, hidden=hidden)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["envs"] = list(self.envs)
        values["normalize"] = {k: list(v) for k, v in self.normalize.items()}
        return values

    @classmethod
    def from_dict(cls, values: dict) -> MetaSpec:
        values = dict(values)
        values["envs"] = tuple(values.get("envs", cls.envs))
        values["normalize"] = {k: tuple(v) for k, v in values.get("normalize", {}).items()}
        return cls(**values)


@dataclasses.dataclass
class MetaResult:
    spec: MetaSpec
    mean_params: Any  #: the ES mean after the last generation (the drift to use)
    best_params: Any  #: the best member seen (its fitness is one noisy draw)
    history: dict  #: name in :data:`HISTORY` → ``[generations]``
    #: wall seconds: ``compile`` (the inner programs) and ``generations`` (all generations run
    #: here, compile excluded)
    seconds: dict


def final_return(metrics: dict, updates: int) -> jax.Array:
    """Mean return of the episodes that ended in the last ``updates`` updates of one run's
    metrics (``[num_updates]`` each), weighted by the episodes each update finished; NaN when
    none ended there. The in-jit twin of :func:`pgjax.engine.final_returns`."""
    count = metrics["episodes"][-updates:]
    total = jnp.sum(jnp.nan_to_num(metrics["episodic_return"][-updates:]) * count)
    return jnp.where(count.sum() > 0, total / jnp.maximum(count.sum(), 1), jnp.nan)


def _fitness_updates(spec: MetaSpec, config: Config) -> int:
    if spec.fitness_updates is not None:
        return min(spec.fitness_updates, config.num_updates)
    return max(1, round(config.num_updates * FINAL_WINDOW))


def make_evaluate(config: Config, seeds: int, updates: int, devices=None):
    """A jitted ``evaluate(members, keys) -> returns [M, seeds]``: the inner run of every
    member (``members``: drift parameters with a leading axis M) on every key (``[seeds]``
    PRNG keys, typed or legacy ``PRNGKey`` data, shared by all members: common random
    numbers), as one program over ``M × seeds`` runs split across ``devices``; each run's
    return is :func:`final_return`.

    Run ``(m, s)`` is ``make_train(config.replace(drift_params=members[m]))(keys[s])``.
    """
    def run(args):
        params, key = args
        _, metrics = make_train(config.replace(drift_params=params))(key)
        return final_return(metrics, updates)

    def evaluate(members, keys):
        count = jax.tree.leaves(members)[0].shape[0]
        runs = count * seeds
        used = run_devices(runs, devices)
        which = padded_order(runs, len(used))
        params = jax.tree.map(lambda x: x[which // seeds], members)
        returns = over_runs(run, used)((params, typed_key(keys)[which % seeds]))
        return returns[:runs].reshape(count, seeds)

    return jax.jit(evaluate)


def make_strategy(spec: MetaSpec, solution):
    """The evosax strategy (and its params) over pytrees shaped like ``solution``."""
    from evosax.algorithms import distribution_based_algorithms

    if spec.strategy not in distribution_based_algorithms:
        raise ValueError(f"meta: strategy {spec.strategy!r} is not an evosax distribution-"
                         f"based algorithm (known: {', '.join(distribution_based_algorithms)})")
    kwargs = dict(spec.strategy_kwargs)
    if spec.strategy == "Open_ES":
        kwargs.setdefault("optimizer", optax.adam(
            optax.exponential_decay(spec.learning_rate, 1, spec.learning_rate_decay,
                                    end_value=spec.learning_rate_min), b1=0.99, b2=0.999))
        kwargs.setdefault("std_schedule", optax.exponential_decay(
            spec.sigma, 1, spec.sigma_decay, end_value=spec.sigma_min))
    strategy = distribution_based_algorithms[spec.strategy](
        population_size=spec.population_size, solution=solution, **kwargs)
    return strategy, strategy.default_params


def _keys(spec: MetaSpec, generation: int):
    """(ask, inner seeds, tell) keys of a generation: a pure function of seed and generation,
    so a resumed run draws what the uninterrupted one would have."""
    key = jax.random.fold_in(jax.random.key(spec.seed), generation)
    ask, inner, tell = jax.random.split(key, 3)
    return ask, jax.random.split(inner, spec.inner_seeds), tell


def _normalised(spec: MetaSpec, env: str, returns):
    if len(spec.envs) == 1:
        return returns
    low, high = spec.normalize[env]
    return (returns - low) / (high - low)


def meta_train(spec: MetaSpec, out=None, *, resume: bool = True, progress: bool = True,
               devices=None, checkpoint: CheckpointOptions | None = None,
               init_params=None, fitness_fn=None) -> MetaResult:
    """Evolve ``spec.algo``'s drift parameters for ``spec.generations`` generations.

    Each generation: ask the strategy for ``population_size`` members, evaluate them and the
    current mean (one program per env over ``(population + 1) × inner_seeds`` inner runs),
    tell the strategy ``−fitness``. ``fitness`` is the mean over inner seeds (and over envs,
    normalised) of the inner runs' final returns. With ``out``, the ES state and history are
    checkpointed after every generation (``checkpoint`` default: every generation, last 3
    kept) and, with ``resume``, a run found there continues where it stopped — bit-identical
    to an uninterrupted one, since every key is a function of (seed, generation).
    ``init_params`` (default: the algorithm's zero parameters) is the initial ES mean.
    ``fitness_fn(members, keys) -> returns [M, inner_seeds]`` (jittable) replaces the inner
    training runs, e.g. to meta-learn against a cheaper or a custom objective.
    """
    configs = spec.configs()
    solution = init_params if init_params is not None else spec.initial_params(configs[0])
    strategy, es_params = make_strategy(spec, solution)
    evaluators = [jax.jit(fitness_fn)] if fitness_fn is not None else [
        make_evaluate(c, spec.inner_seeds, _fitness_updates(spec, c), devices) for c in configs]
    history = {name: np.zeros(0, np.float32) for name in HISTORY}
    state = strategy.init(jax.random.key(spec.seed), solution, es_params)
    with run_directory_lock(out, enabled=out is not None):  # one process per run directory
        checkpoints = start = None
        if out is not None:
            out = Path(out)
            out.mkdir(parents=True, exist_ok=True)
            checkpoints = Checkpointer(out / CHECKPOINT_DIR,
                                       checkpoint or CheckpointOptions(every_updates=1,
                                                                       every_seconds=None))
            checkpoints.remove_temporary()  # what a failed or killed save left behind
            # what must match to continue (more generations may be asked for)
            identity = {"spec": {k: v for k, v in spec.to_dict().items() if k != "generations"}}
            snapshot = checkpoints.restore_latest(state, identity) if resume else None
            if snapshot is not None:
                state, history, start = snapshot.state, snapshot.history, snapshot.step
        start = start or 0
        if out is not None:
            write_spec(spec, out, start)

        def generation(g, state):
            key_ask, inner_keys, key_tell = _keys(spec, g)
            population, state = strategy.ask(key_ask, state, es_params)
            mean = strategy.get_mean(state)
            members = jax.tree.map(lambda p, m: jnp.concatenate([p, m[None]]), population, mean)
            if not compiled:
                t0 = time.perf_counter()
                compiled.extend(e.lower(members, inner_keys).compile(compiler_options())
                                for e in evaluators)
                times["compile"] = time.perf_counter() - t0
            returns = [_normalised(spec, env, np.asarray(evaluate(members, inner_keys)))
                       for env, evaluate in zip(spec.envs, compiled, strict=False)]
            fitness = np.mean(returns, axis=(0, 2))  # [population + 1]
            population_fitness = fitness[:-1]
            shaped = np.where(np.isnan(population_fitness), np.inf, -population_fitness)
            std = float(np.mean(np.asarray(getattr(state, "std", np.nan))))
            state, _ = strategy.tell(key_tell, population, jnp.asarray(shaped), state, es_params)
            row = (np.nanmean(population_fitness), np.nanmax(population_fitness), fitness[-1], std)
            return state, row

        times = {"compile": 0.0, "generations": 0.0}
        compiled = []
        bar = None
        if progress and start < spec.generations:
            from tqdm.auto import tqdm

            bar = tqdm(total=spec.generations, initial=start, unit="gen", dynamic_ncols=True,
                       desc=f"meta {spec.algo} {'+'.join(spec.envs)}")
        for g in range(start, spec.generations):
            t0 = time.perf_counter()
            state, row = generation(g, state)
            times["generations"] += time.perf_counter() - t0
            if g == start:
                times["generations"] -= times["compile"]
            history = {name: np.append(history[name], np.float32(v))
                       for name, v in zip(HISTORY, row)}
            if checkpoints is not None:
                checkpoints.save(g + 1, state, history, {"identity": identity})
            if bar is not None:
                bar.set_postfix(mean=f"{row[2]:.1f}", best=f"{row[1]:.1f}", refresh=False)
                bar.update(1)
        if bar is not None:
            bar.close()
        if checkpoints is not None:
            checkpoints.close()
        best = strategy._unravel_solution(state.best_solution) \
            if not np.isnan(np.asarray(state.best_solution)).any() else None
        result = MetaResult(spec, strategy.get_mean(state), best, history, times)
        if out is not None:
            write_meta(result, out)
        return result


def resume_meta(out, *, generations: int | None = None, progress: bool = True,
                devices=None) -> MetaResult:
    """Continue the meta-learning run in ``out`` (its ``meta.json`` spec) from its newest good
    checkpoint, optionally to a larger number of ``generations``."""
    spec = MetaSpec.from_dict(read_spec(out))
    if generations is not None:
        spec = dataclasses.replace(spec, generations=generations)
    return meta_train(spec, out, resume=True, progress=progress, devices=devices)
