"""Bad input: every generated config either trains for one update or raises the one-line
validation ``ValueError`` naming the field — never an exception from inside JAX."""

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgjax
from pgjax.validation import FLOAT_RANGES as _FLOAT_RANGES

# The shape fields take few values, mostly valid ones (each valid combination is one compile,
# cached below by jit on the config's static fields); up to three continuous leaves take any
# float at all, or one in a plausible range.
SHAPES = dict(
    algo=st.sampled_from(["ppo"] * 6 + ["dpo"] * 3 + ["ppx"]),
    num_envs=st.sampled_from([2] * 10 + [-1, 0, 2.5]),
    num_steps=st.sampled_from([8] * 10 + [0]),
    num_epochs=st.sampled_from([1] * 10 + [0]),
    num_minibatches=st.sampled_from([1] * 5 + [2] * 5 + [0, 3]),
    updates=st.sampled_from([1] * 10 + [1.5, 0]),  # total_timesteps = updates × batch
    actor_hidden=st.sampled_from([(8,)] * 8 + ["8x8"] * 2 + [(), (0, 8)]),
)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
LEAF = st.sampled_from(sorted(_FLOAT_RANGES)).flatmap(lambda name: st.tuples(
    st.just(name), st.one_of(st.floats(_FLOAT_RANGES[name][0], min(_FLOAT_RANGES[name][1], 2.0)),
                             ANY_FLOAT)))
LEAVES = st.lists(LEAF, max_size=3).map(dict)


@pytest.fixture(scope="module")
def train_once():
    """One jitted ``train`` for every config: the leaves are traced, so jit compiles once per
    combination of static (shape) fields."""
    return jax.jit(lambda config, key: pgjax.make_train(config)(key))


@pytest.mark.slow
def test_every_config_trains_or_fails_in_one_line(train_once):
    outcomes = []

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(shapes=st.fixed_dictionaries(SHAPES), leaves=LEAVES)
    def trains_or_fails_in_one_line(shapes, leaves):
        shapes = dict(shapes)
        algo, updates = shapes.pop("algo"), shapes.pop("updates")
        batch = shapes["num_envs"] * shapes["num_steps"]
        try:
            config = pgjax.make_config(algo, "CartPole-v1", critic_hidden=(8,),
                                       total_timesteps=updates * batch, **shapes, **leaves)
        except ValueError as error:
            message = str(error)
            assert "\n" not in message
            field = message.split(":", 1)[0]
            assert field in {"algo", "total_timesteps", *SHAPES, *leaves}, message
            outcomes.append(field)
            return
        assert config.num_updates == 1
        config = pgjax.stack_configs([config])  # leaves as float32 arrays, as a sweep has them
        config = jax.tree.map(lambda x: x[0], config)
        state, metrics = train_once(config, jax.random.key(0))
        assert np.asarray(metrics["env_steps"]).tolist() == [batch]
        outcomes.append("trained")

    trains_or_fails_in_one_line()
    # Both outcomes really happened, and the errors came from several fields.
    assert outcomes.count("trained") >= 5, outcomes
    assert len(set(outcomes) - {"trained"}) >= 5, outcomes
    assert set(outcomes) & set(_FLOAT_RANGES), outcomes
