"""``import pgjax`` leaves XLA's flags alone; ``pgjax.use_host_devices`` is the opt-in."""

import os
import subprocess
import sys
import textwrap

import pytest


def run(code: str, flags: str = "--x") -> str:
    env = {k: v for k, v in os.environ.items() if k != "PGJAX_HOST_DEVICES"}
    env["XLA_FLAGS"] = flags
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout + out.stderr


def test_import_keeps_flags_and_use_host_devices_makes_devices_before_jax_starts():
    out = run("""
        import os, warnings
        import pgjax
        assert os.environ["XLA_FLAGS"] == "--x", os.environ["XLA_FLAGS"]
        os.environ["XLA_FLAGS"] = ""
        assert pgjax.use_host_devices(3) == 3
        import jax
        assert jax.device_count() == 3, jax.devices()
        assert "--xla_cpu_enable_concurrency_optimized_scheduler=false" in os.environ["XLA_FLAGS"]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert pgjax.use_host_devices(2) == 3  # too late: JAX has started
        assert len(caught) == 1 and "already started with 3" in str(caught[0].message)
        print("ok")
    """)
    assert out.strip().endswith("ok"), out


@pytest.mark.slow
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a one-core machine has nothing to say")
def test_train_says_in_one_line_when_seeds_share_one_cpu_device():
    out = run("""
        import warnings
        import pgjax
        config = pgjax.make_config("ppo", "CartPole-v1", num_envs=2, num_steps=8,
                                   num_minibatches=1, num_epochs=1, total_timesteps=16)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pgjax.train(config, seeds=2, progress=False)
        messages = [str(w.message) for w in caught if "use_host_devices" in str(w.message)]
        assert len(messages) == 1 and "\\n" not in messages[0], messages
        print("ok")
    """, flags="--xla_cpu_enable_concurrency_optimized_scheduler=false")
    assert out.strip().endswith("ok"), out


def test_make_train_warns_while_the_cpu_scheduler_that_hangs_vmapped_runs_is_on():
    out = run("""
        import warnings
        import pgjax
        config = pgjax.make_config("ppo", "CartPole-v1")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pgjax.make_train(config)
            pgjax.make_train(config)  # once per process
        messages = [str(w.message) for w in caught if "scheduler" in str(w.message)]
        assert len(messages) == 1 and "use_host_devices()" in messages[0], messages
        print("ok")
    """, flags="")
    assert out.strip().endswith("ok"), out


@pytest.mark.slow
def test_cli_keeps_compiled_programs_and_says_it_is_compiling(tmp_path):
    """`pgjax train` stores its programs in the persistent compilation cache
    (PGJAX_COMPILE_CACHE) and prints a compiling line, then its seconds, before training."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["PGJAX_COMPILE_CACHE"] = str(tmp_path / "cache")
    out = subprocess.run(
        [sys.executable, "-m", "pgjax", "train", "ppo", "CartPole-v1", "--total-timesteps",
         "4096", "--no-checkpoints", "--out", str(tmp_path / "run")],
        env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "compiling ppo gymnax/CartPole-v1 ×1 …" in out.stderr
    assert "compiled ppo gymnax/CartPole-v1 ×1 in" in out.stderr
    assert any((tmp_path / "cache").iterdir())


def test_no_compile_cache_flag_turns_the_cache_off(monkeypatch):
    import pgjax.cli

    calls = []
    monkeypatch.setattr(pgjax.cli, "use_compile_cache", lambda: calls.append(1))
    bad = ["train", "ppo", "CartPole-v1", "--set", "learning_rate=-1"]
    assert pgjax.cli.main(bad + ["--no-compile-cache"]) == 2 and calls == []
    assert pgjax.cli.main(bad) == 2 and calls == [1]
    for argv in (["sweep", "--no-compile-cache"], ["resume", "x", "--no-compile-cache"],
                 ["eval", "x", "--no-compile-cache"],
                 ["meta", "lpo", "CartPole-v1", "--no-compile-cache"]):
        assert pgjax.cli.build_parser().parse_args(argv).no_compile_cache
