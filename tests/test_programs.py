"""The program store (pgjax.programs): a run of a stored configuration traces nothing and trains
bit-identically; the digest changes with everything that shapes a program; user code, damaged
files and an unwritable store fall back to tracing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax import engine, programs

TINY = dict(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=4, total_timesteps=4 * 32 * 6)


@pytest.fixture(scope="module")
def config():
    return pgjax.make_config("ppo", "CartPole-v1", **TINY)


@pytest.fixture
def store(tmp_path):
    programs.use_program_store(tmp_path / "programs")
    yield tmp_path / "programs"
    programs.use_program_store(None)


@pytest.fixture
def traces(monkeypatch):
    """How many times the engine built a trainer (once per traced program)."""
    calls = []

    def counted(config):
        calls.append(config)
        return make_trainer(config)

    make_trainer = engine.make_trainer
    monkeypatch.setattr(engine, "make_trainer", counted)
    return calls


def _train(config, tmp=None, store=True, **kwargs):
    """Three seeds on two devices (padded to four), in two chunks unless said otherwise."""
    if not store:
        stored, _ = programs.program_store(), programs.use_program_store(None)
        try:
            return _train(config, tmp, **kwargs)
        finally:
            programs.use_program_store(stored)
    kwargs.setdefault("num_chunks", 2)
    return pgjax.train(config, seeds=3, progress=False, out=tmp, **kwargs)


def _assert_identical(a, b):
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name], err_msg=name)
    for x, y in zip(jax.tree.leaves(a.final_state.params), jax.tree.leaves(b.final_state.params)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def unstored(config):
    assert programs.program_store() is None
    return _train(config)


def test_a_stored_configuration_runs_again_without_tracing_bit_identically(
        config, unstored, store, traces, tmp_path):
    first = _train(config)
    assert len(traces) == 2  # init and the chunk, traced once to be stored
    assert len(list(store.glob(f"*{programs.SUFFIX}"))) == 2
    traces.clear()
    second = _train(config, tmp_path / "run")  # checkpoints: the chunk's shapes from the store
    assert traces == []
    _assert_identical(first, unstored)
    _assert_identical(second, unstored)
    resumed = pgjax.resume(tmp_path / "run", progress=False)  # restores: still nothing traced
    assert traces == [] and resumed.summary["resumed_at_update"] == config.num_updates


@pytest.mark.slow
def test_a_shorter_last_chunk_has_its_own_stored_program(store, traces):
    config = pgjax.make_config("ppo", "CartPole-v1", **dict(TINY, total_timesteps=4 * 32 * 23))
    first = _train(config, num_chunks=5)  # 5 + 5 + 5 + 5 + 3 updates: two chunk programs
    traces.clear()
    second = _train(config, num_chunks=5)
    assert traces == []
    steps = second.metrics["env_steps"]
    assert steps.shape == (3, 23) and steps[0, -1] == 23 * config.batch_size  # not 5 × 5
    _assert_identical(second, first)


@pytest.mark.slow
def test_a_damaged_or_unwritable_store_traces_again(config, unstored, store, traces, tmp_path):
    _train(config)
    for path in store.glob(f"*{programs.SUFFIX}"):
        path.write_bytes(b"not a program")
    traces.clear()
    _assert_identical(_train(config), unstored)
    assert len(traces) == 2  # traced again, and stored again
    traces.clear()
    _train(config)
    assert traces == []
    programs.use_program_store(tmp_path / "file")
    (tmp_path / "file").write_text("a file, not a directory")
    _assert_identical(_train(config), unstored)


def test_the_digest_changes_with_every_part_of_a_program(config, monkeypatch):
    keys = jax.random.split(jax.random.key(0), 2)
    base = {"program": "init", "configs": [config.to_dict()]}
    digest = programs.program_digest(base, (keys,))
    assert programs.program_digest(dict(base), (keys,)) == digest
    wider = pgjax.make_config("ppo", "CartPole-v1", **dict(TINY, actor_hidden=(32, 32)))
    faster = config.replace(learning_rate=1e-3)
    others = [programs.program_digest({**base, "configs": [c.to_dict()]}, (keys,))
              for c in (wider, faster)]
    others.append(programs.program_digest({**base, "program": "chunk of 3"}, (keys,)))
    others.append(programs.program_digest(base, (jax.random.split(jax.random.key(0), 3),)))
    monkeypatch.setattr(programs, "source_digest", lambda: "edited")
    others.append(programs.program_digest(base, (keys,)))
    monkeypatch.undo()
    monkeypatch.setattr(programs, "traced_versions", lambda: {"jax": "0.0"})
    others.append(programs.program_digest(base, (keys,)))
    assert len(set(others + [digest])) == len(others) + 1


def test_only_pgjax_own_code_is_stored(config):
    assert engine.storable([config])
    env = pgjax.envs.make("CartPole-v1")
    assert not engine.storable([config.replace(env=env)])
    assert not engine.storable([config.replace(algo="mirror", drift=lambda r, a: r * a)])
    name = "cartpole-registered-by-a-test"
    pgjax.envs.register(name, lambda: pgjax.envs.make("CartPole-v1"))
    try:
        assert not engine.storable([config.replace(env=name)])
    finally:
        pgjax.envs._registry.pop(name)  # noqa: SLF001 — the test's own registration
    drift = pgjax.algorithms.register_drift("test_programs_drift", lambda ratio, advantage:
                                            (ratio - 1.0) ** 2)
    try:
        assert not engine.storable([config.replace(algo=drift.name)])
    finally:
        pgjax.algorithms.ALGORITHMS.pop(drift.name)


@pytest.mark.parametrize("stored", [False, True])
def test_programs_compile_with_pgjax_compiler_options(stored, tmp_path, monkeypatch):
    """Stored or traced, a program is compiled with :func:`pgjax.compiler_options` (an
    option XLA does not know must reach XLA and fail there)."""
    if stored:
        programs.use_program_store(tmp_path / "programs")
    try:
        program = programs.Program(lambda x: x * 2.0, (np.ones(3, np.float32),),
                                   {"name": "double"} if stored else None)
        np.testing.assert_array_equal(program.compile()(np.ones(3, np.float32)), 2.0)
        monkeypatch.setattr(programs, "compiler_options", lambda: {"not_an_xla_option": 1})
        with pytest.raises(Exception, match="not_an_xla_option"):
            programs.Program(lambda x: x * 3.0, (np.ones(3, np.float32),),
                             {"name": "triple"} if stored else None).compile()
    finally:
        programs.use_program_store(None)


def test_compiler_options_lower_llvm_on_cpu_unless_optimisations_are_off(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    disabled = jax.config.read("jax_disable_most_optimizations")
    try:
        jax.config.update("jax_disable_most_optimizations", False)
        assert pgjax.compiler_options() == {"xla_backend_optimization_level": 1,
                                            "xla_disable_hlo_passes": "tree_reduction_rewriter"}
        jax.config.update("jax_disable_most_optimizations", True)
        assert pgjax.compiler_options() is None
    finally:
        jax.config.update("jax_disable_most_optimizations", disabled)


def test_disabled_passes_keep_the_ones_xla_flags_disables():
    flags = "--xla_force_host_platform_device_count=2 --xla_disable_hlo_passes=algsimp,cse"
    assert programs.disabled_passes(flags) == ("algsimp", "cse", "tree_reduction_rewriter")
    assert programs.disabled_passes("--xla_disable_hlo_passes=tree_reduction_rewriter") == (
        "tree_reduction_rewriter",)
    assert programs.disabled_passes("") == programs.DISABLED_PASSES


def test_compiler_options_sum_in_one_kernel_as_accurately():
    """Under pgjax's options a sum over 2048 numbers is one kernel, no windowed partial sums
    (XLA's tree-reduction pass is off; larger sums go to YNNPACK either way), and within
    float32 rounding of the exact sum."""
    disabled = jax.config.read("jax_disable_most_optimizations")
    try:
        jax.config.update("jax_disable_most_optimizations", False)
        x = np.random.default_rng(0).standard_normal(2048).astype(np.float32) + 1.0
        lowered = jax.jit(lambda x: jnp.sum(jnp.tanh(x))).lower(x)
        ours = lowered.compile(pgjax.compiler_options())
        assert "reduce-window" in lowered.compile().as_text()
        assert "reduce-window" not in ours.as_text() and ours.as_text().count(" fusion(") == 1
        exact = np.tanh(x.astype(np.float64)).sum()
        assert abs(float(ours(x)) - exact) < 1e-6 * abs(exact)
    finally:
        jax.config.update("jax_disable_most_optimizations", disabled)
