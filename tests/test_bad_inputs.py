"""Bad input, from the shell and from Python: refused on the host before anything is compiled or
written, in one line naming the key or flag and the value, exit status 2 from the CLI. Nothing
here trains: every case is refused, or (the fuzzed ones) stops at a stand-in for the training.
"""

from __future__ import annotations

import re

import jax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgjax
from pgjax import meta, sweeps
from pgjax.checkpoint import CheckpointOptions
from pgjax.checks import check_history
from pgjax.cli import main


def run_cli(argv, capsys) -> tuple[int, list[str]]:
    """``pgjax ARGV`` in this process: (exit status, stderr lines)."""
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.strip().splitlines()


def write(path, text):
    path.write_text(text)
    return str(path)


MINIMAL = "algos: [ppo]\nenvs: [CartPole-v1]\n"
#: (name, argv given a tmp dir as ``T``, what the line must name) — the rows of issue 20 first
CLI_CASES = [
    ("total-timesteps 1e30", ["train", "ppo", "CartPole-v1", "--total-timesteps", "1e30"],
     ["--total-timesteps", "1e30", "2147483647"]),
    ("--set total_timesteps=1e30", ["train", "ppo", "CartPole-v1", "--set",
                                    "total_timesteps=1e30"], ["total_timesteps", "1e+30"]),
    ("--set num_envs=1e30", ["train", "ppo", "CartPole-v1", "--set", "num_envs=1e30"],
     ["num_envs", "1e+30"]),
    ("malformed YAML", ["sweep", "T/bad.yaml"], ["spec", "bad.yaml", "not valid YAML",
                                                  "line 2"]),
    ("missing spec", ["sweep", "T/nothere.yaml"], ["spec", "nothere.yaml", "missing"]),
    ("spec is a directory", ["sweep", "T"], ["spec", "is a directory"]),
    ("empty grid in spec", ["sweep", "T/empty_grid.yaml"], ["grid.learning_rate", "[]",
                                                            "empty"]),
    ("empty --grid", ["sweep", "--algos", "ppo", "--envs", "CartPole-v1", "--grid",
                      "learning_rate="], ["--grid", "'learning_rate='", "no values"]),
    ("unknown metric", ["sweep", "T/metric.yaml"], ["metrics", "'nosuchmetric'",
                                                    "episodic_return"]),
    ("spec is a list", ["sweep", "T/list.yaml"], ["spec", "list", "mapping", "algos"]),
    ("seed: abc", ["sweep", "T/seed.yaml"], ["seed", "'abc'", "integer"]),
    ("set: [1,2]", ["sweep", "T/set.yaml"], ["set", "[1, 2]", "mapping"]),
    ("algos: {ppo: [1]}", ["sweep", "T/algos.yaml"], ["algos.ppo", "[1]", "mapping"]),
    ("list: [1, 2]", ["sweep", "T/points.yaml"], ["list[0]", "1", "mapping"]),
    ("eval --episodes -3", ["eval", "T", "--episodes", "-3"], ["--episodes", "-3", "positive"]),
    ("--checkpoint-every -1", ["train", "ppo", "CartPole-v1", "--checkpoint-every", "-1"],
     ["--checkpoint-every", "-1", "≥ 0"]),
    # --- found beyond the table ---
    ("--checkpoint-every nan", ["train", "ppo", "CartPole-v1", "--checkpoint-every", "nan"],
     ["--checkpoint-every", "nan"]),
    ("--total-timesteps inf", ["train", "ppo", "CartPole-v1", "--total-timesteps", "inf"],
     ["--total-timesteps", "inf"]),
    ("--seed 1e23", ["train", "ppo", "CartPole-v1", "--seed", "99999999999999999999999"],
     ["--seed", "99999999999999999999999"]),
    ("--seeds abc", ["train", "ppo", "CartPole-v1", "--seeds", "abc"], ["--seeds", "'abc'"]),
    ("--seeds 2e9 (metrics history)", ["train", "ppo", "CartPole-v1", "--seeds", "2000000000",
                                       "--total-timesteps", "2048000"],
     ["seeds", "2000000000", "GiB", "memory"]),
    ("--keep-checkpoints 0", ["train", "ppo", "CartPole-v1", "--keep-checkpoints", "0"],
     ["--keep-checkpoints", "0"]),
    ("--checkpoint-every-updates 0", ["resume", "T", "--checkpoint-every-updates", "0"],
     ["--checkpoint-every-updates", "0"]),
    ("--set =3", ["train", "ppo", "CartPole-v1", "--set", "=3"], ["--set", "'=3'"]),
    ("--set env.=3", ["train", "ppo", "CartPole-v1", "--set", "env.=3"], ["--set", "env.=3"]),
    ("unknown flag", ["train", "ppo", "CartPole-v1", "--nosuchflag"], ["--nosuchflag"]),
    ("missing env argument", ["train", "ppo"], ["env", "required"]),
    ("unknown command", ["nosuchcommand"], ["nosuchcommand", "train"]),
    ("--grid without =", ["sweep", "--algos", "ppo", "--envs", "CartPole-v1", "--grid", "lr"],
     ["--grid", "'lr'"]),
    ("--process-id >= --num-processes", ["sweep", "--algos", "ppo", "--envs", "CartPole-v1",
                                         "--num-processes", "2", "--process-id", "2"],
     ["--process-id", "2", "--num-processes"]),
    ("--local-processes 0", ["sweep", "--local-processes", "0"], ["--local-processes", "0"]),
    ("--local-processes 2, bad set", ["sweep", "--algos", "ppo", "--envs", "CartPole-v1",
                                      "--local-processes", "2", "--set", "num_envs=0"],
     ["num_envs", "0"]),
    ("spec seeds: true", ["sweep", "T/seeds_true.yaml"], ["seeds", "True"]),
    ("spec seed: 1.5", ["sweep", "T/seed_float.yaml"], ["seed", "1.5"]),
    ("spec grid: [1, 2]", ["sweep", "T/grid_list.yaml"], ["grid", "[1, 2]"]),
    ("spec sinks: [nosuch]", ["sweep", "T/sinks.yaml"], ["sinks", "'nosuch'", "tensorboard"]),
    ("spec envs: mapping", ["sweep", "T/envs_map.yaml"], ["envs", "mapping"]),
    ("spec not UTF-8", ["sweep", "T/binary.yaml"], ["spec", "binary.yaml", "cannot be read"]),
    ("meta --sigma -1", ["meta", "lpo", "CartPole-v1", "--sigma", "-1"], ["--sigma", "-1"]),
    ("meta --init-scale nan", ["meta", "lpo", "CartPole-v1", "--init-scale", "nan"],
     ["--init-scale", "nan"]),
    ("meta --population 0", ["meta", "lpo", "CartPole-v1", "--population", "0"],
     ["--population", "0"]),
    ("meta --normalize low > high", ["meta", "lpo", "CartPole-v1", "Acrobot-v1", "--normalize",
                                     "CartPole-v1=5,1", "Acrobot-v1=0,1"],
     ["normalize.CartPole-v1", "(5.0, 1.0)", "low < high"]),
    ("meta --normalize another env", ["meta", "lpo", "CartPole-v1", "--normalize",
                                      "Acrobot-v1=0,1"], ["normalize", "'Acrobot-v1'"]),
    ("eval --seed abc", ["eval", "T", "--seed", "abc"], ["--seed", "'abc'"]),
    ("list extra", ["list", "extra"], ["extra"]),
    ("resume a damaged spec.json", ["resume", "T/damaged_sweep"], ["resume", "spec.json",
                                                                   "damaged"]),
    ("resume a damaged meta.json", ["resume", "T/damaged_meta"], ["resume", "meta.json",
                                                                  "damaged"]),
    ("eval a damaged summary.json", ["eval", "T/damaged_run"], ["eval", "summary.json",
                                                                "damaged"]),
]
SPECS = {
    "bad.yaml": "algos: [ppo\n", "empty_grid.yaml": MINIMAL + "grid: {learning_rate: []}\n",
    "metric.yaml": MINIMAL + "metrics: [nosuchmetric]\n", "list.yaml": "- ppo\n",
    "seed.yaml": MINIMAL + "seed: abc\n", "set.yaml": MINIMAL + "set: [1, 2]\n",
    "algos.yaml": "algos: {ppo: [1]}\nenvs: [CartPole-v1]\n",
    "points.yaml": MINIMAL + "list: [1, 2]\n", "seeds_true.yaml": MINIMAL + "seeds: true\n",
    "seed_float.yaml": MINIMAL + "seed: 1.5\n", "grid_list.yaml": MINIMAL + "grid: [1, 2]\n",
    "sinks.yaml": MINIMAL + "sinks: [nosuch]\n",
    "envs_map.yaml": "algos: [ppo]\nenvs: {a: 1}\n",
}


@pytest.fixture
def spec_dir(tmp_path):
    for name, text in SPECS.items():
        write(tmp_path / name, text)
    (tmp_path / "binary.yaml").write_bytes(b"\x00\xff")
    for run, name in [("damaged_sweep", "spec.json"), ("damaged_meta", "meta.json"),
                      ("damaged_run", "summary.json"), ("damaged_run", "policy.msgpack")]:
        (tmp_path / run).mkdir(exist_ok=True)
        write(tmp_path / run / name, "[1]" if run == "damaged_meta" else "{bad")
    return tmp_path


@pytest.mark.parametrize("argv, names", [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_in_one_line(argv, names, spec_dir, capsys, monkeypatch):
    monkeypatch.chdir(spec_dir)  # a default --out would land here
    before = sorted(p.name for p in spec_dir.iterdir())
    out = ["--out", str(spec_dir / "out")] if argv[0] in ("train", "sweep", "meta") else []
    code, lines = run_cli([a.replace("T", str(spec_dir), 1) if a.startswith("T") else a
                           for a in argv] + out, capsys)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert re.match(r"^pgjax( \w+)?: error: ", lines[0]), lines
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert sorted(p.name for p in spec_dir.iterdir()) == before  # nothing written


CONFIG = None


def _config():
    global CONFIG
    CONFIG = CONFIG or pgjax.make_config("ppo", "CartPole-v1", num_envs=2, num_steps=8,
                                         total_timesteps=64)
    return CONFIG


#: (name, call, what the message must start with)
API_CASES = [
    ("train seeds=0", lambda out: pgjax.train(_config(), seeds=0, out=out), "seeds: 0"),
    ("train seeds=2.0", lambda out: pgjax.train(_config(), seeds=2.0, out=out), "seeds: 2.0"),
    ("train num_chunks=0", lambda out: pgjax.train(_config(), num_chunks=0, out=out),
     "num_chunks: 0"),
    ("train seed=2**70", lambda out: pgjax.train(_config(), seed=2**70, out=out), "seed: 1180"),
    ("train a string", lambda out: pgjax.train("ppo", out=out), "config: 'ppo' is not a Config"),
    ("train checkpoint='yes'", lambda out: pgjax.train(_config(), out=out, checkpoint="yes"),
     "checkpoint: 'yes'"),
    ("train checkpoint={keep: 0}", lambda out: pgjax.train(_config(), out=out,
                                                            checkpoint={"keep": 0}),
     "checkpoint keep: 0"),
    ("sweep spec=5", lambda out: pgjax.sweep(5, out=out), "sweep: spec 5"),
    ("sweep grid={lr: []}", lambda out: pgjax.sweep(algos="ppo", envs="CartPole-v1", out=out,
                                                    grid={"learning_rate": []}),
     "grid.learning_rate: []"),
    ("sweep metrics=[x]", lambda out: pgjax.sweep(algos="ppo", envs="CartPole-v1", out=out,
                                                  metrics=["x"]), "metrics: 'x'"),
    ("make_config total_timesteps=2**31", lambda out: pgjax.make_config(
        "ppo", total_timesteps=2**31), "total_timesteps: 2147483648"),
    ("make_config cg_iters=1e12", lambda out: pgjax.make_config("trpo", cg_iters=10**12),
     "cg_iters: 1000000000000"),
    ("evaluate num_episodes=-3", lambda out: pgjax.evaluate(_config(), None, jax.random.key(0),
                                                            -3), "num_episodes: -3"),
    ("CheckpointOptions every_seconds='60'", lambda out: CheckpointOptions(every_seconds="60"),
     "checkpoint every_seconds: '60'"),
    ("CheckpointOptions every_seconds=nan", lambda out: CheckpointOptions(
        every_seconds=float("nan")), "checkpoint every_seconds: nan"),
    ("CheckpointOptions keep=True", lambda out: CheckpointOptions(keep=True),
     "checkpoint keep: True"),
    ("CheckpointOptions every_updates=2**40", lambda out: CheckpointOptions(every_updates=2**40),
     "checkpoint every_updates: 1099511627776"),
    ("CheckpointOptions async_save='no'", lambda out: CheckpointOptions(async_save="no"),
     "checkpoint async_save: 'no'"),
    ("MetaSpec envs='CartPole-v1'", lambda out: meta.MetaSpec(envs="CartPole-v1"),
     "meta: envs: 'CartPole-v1'"),
    ("MetaSpec sigma_decay=1.5", lambda out: meta.MetaSpec(sigma_decay=1.5),
     "meta: sigma_decay: 1.5"),
    ("MetaSpec learning_rate=inf", lambda out: meta.MetaSpec(learning_rate=float("inf")),
     "meta: learning_rate: inf"),
    ("MetaSpec seed='a'", lambda out: meta.MetaSpec(seed="a"), "meta: seed: 'a'"),
    ("MetaSpec set=[1]", lambda out: meta.MetaSpec(set=[1]), "meta: set: [1]"),
    ("MetaSpec strategy_kwargs=None", lambda out: meta.MetaSpec(strategy_kwargs=None),
     "meta: strategy_kwargs: None"),
    ("MetaSpec normalize pair", lambda out: meta.MetaSpec(normalize={"CartPole-v1": (1,)}),
     "meta: normalize.CartPole-v1: (1,)"),
]


@pytest.mark.parametrize("call, start", [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_python_api_refuses_in_one_line(call, start, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError) as error:
        call(out)
    message = str(error.value)
    assert "\n" not in message and message.startswith(start), message
    assert not out.exists()


def test_the_metrics_history_is_bounded_by_host_memory():
    check_history(4, 1000, 20, memory=2**30)  # 320 kB of 1 GiB
    with pytest.raises(ValueError, match=r"^seeds: 4 runs × 10000000 updates × 20 metrics is "
                                         r"3.0 GiB .* at most 0.5 GiB"):
        check_history(4, 10_000_000, 20, name="seeds", memory=2**30)


# --- property-based: spec keys and CLI flags, good and bad values, nothing trained ---

SPEC_VALUES = {
    "algos": ["ppo", ["ppo"], {"ppo": {}}, {"ppo": {"gamma": 0.9}}, {"ppo": [1]}, [1], [],
              "nosuch"],
    "envs": ["CartPole-v1", ["CartPole-v1"], [], {"a": 1}, "NoSuchEnv-v1"],
    "seeds": [1, 2, 0, -1, True, 2.5, "abc", 2**40],
    "seed": [0, 7, -3, "abc", 1.5, 2**70],
    "grid": [{"learning_rate": [1e-3, 3e-4]}, {"learning_rate": []}, [1, 2],
             {"gamma": [2.0]}, {"nosuch": [1]}, None],
    "list": [[{"gamma": 0.99}], [1, 2], "x", [{"nosuch": 1}], []],
    "set": [{"total_timesteps": 4096}, [1, 2], {"num_envs": 0}, {"total_timesteps": 1e30},
            None],
    "num_chunks": [1, 10, 0, 2.5],
    "metrics": [["episodic_return"], ["nosuchmetric"], "episodic_return", [1], ["env_steps"]],
    "sinks": [[], ["nosuch"], [3]],
    "checkpoint": [None, False, {"keep": 2}, {"keep": 0}, {"every": 1}, 5],
    "grids": [{"learning_rate": [1e-3]}],  # not a spec key
}


def _named(message: str) -> str:
    """The key a refusal names first (``sweep: ``, ``meta: `` prefixes dropped; ``grid.lr`` →
    ``grid``)."""
    message = re.sub(r"^(sweep|meta): ", "", message)
    if message.startswith("unknown spec key"):
        return message.split("'")[1]
    return re.match(r"^-*([\w-]+)", message).group(1).replace("-", "_")


def test_every_spec_is_accepted_or_refused_in_one_line():
    outcomes = []

    @settings(max_examples=80, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({}, optional={k: st.sampled_from(v)
                                               for k, v in SPEC_VALUES.items()}))
    def accepted_or_one_line(spec):
        spec = {"algos": "ppo", "envs": "CartPole-v1", "set": {"total_timesteps": 4096}, **spec}
        try:
            sweeps.check_sweep(spec)
        except ValueError as error:
            message = str(error)
            assert "\n" not in message, message
            inner = {k for part in ("set", "grid") if isinstance(spec.get(part), dict)
                     for k in spec[part]}
            inner |= {k for e in spec.get("list") or () if isinstance(e, dict) for k in e}
            inner |= {k for o in (spec["algos"].values() if isinstance(spec["algos"], dict)
                                  else ()) if isinstance(o, dict) for k in o}
            named = _named(message)
            assert named in {*spec, *inner, "algo", "env"}, (spec, message)
            outcomes.append(named)
            return
        outcomes.append("accepted")

    accepted_or_one_line()
    assert outcomes.count("accepted") >= 3, outcomes
    assert len(set(outcomes) - {"accepted"}) >= 8, outcomes


class Accepted(Exception):
    """Raised by the stand-ins for training: the command got past every check."""


TRAIN_FLAGS = {
    "--seeds": ["1", "2", "0", "-1", "abc", "1e30", "2.5"],
    "--seed": ["0", "-7", "1e30", "x"],
    "--total-timesteps": ["4096", "1e30", "nan", "-5", "100", "4096.5"],
    "--checkpoint-every": ["0", "60", "inf", "-1", "nan"],
    "--checkpoint-every-updates": ["1", "0", "-2"],
    "--keep-checkpoints": ["2", "0"],
    "--set": ["num_envs=4", "num_envs=0", "=3", "learning_rate", "learning_rate=-1",
              "gamma=2", "nosuch=1", "env.=3"],
}


def test_every_train_command_line_is_accepted_or_refused_in_one_line(capsys, monkeypatch,
                                                                     tmp_path):
    from pgjax.runner import check_arguments

    def stand_in(config, seeds, out, seed, progress, checkpoint, **_):
        check_arguments(config, seeds, seed, 20, checkpoint)
        raise Accepted

    monkeypatch.setattr(pgjax, "train", stand_in, raising=False)
    outcomes = []

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({}, optional={k: st.sampled_from(v)
                                               for k, v in TRAIN_FLAGS.items()}))
    def accepted_or_one_line(flags):
        argv = ["train", "ppo", "CartPole-v1", "--out", str(tmp_path / "run"), "--quiet"]
        for flag, value in flags.items():
            argv += [flag, value] if not value.startswith("-") else [f"{flag}={value}"]
        try:
            code, lines = run_cli(argv, capsys)
        except Accepted:
            outcomes.append("accepted")
            return
        assert code == 2 and len(lines) == 1, (argv, lines)
        named = _named(lines[0].split("error: ", 1)[1].removeprefix("argument "))
        given_keys = {f.lstrip("-").replace("-", "_") for f in flags}
        set_keys = {flags["--set"].partition("=")[0]} if "--set" in flags else set()
        assert named in given_keys | set_keys | {"num_minibatches"}, (argv, lines)
        outcomes.append(named)

    accepted_or_one_line()
    assert not (tmp_path / "run").exists()
    assert outcomes.count("accepted") >= 3, outcomes
    assert len(set(outcomes) - {"accepted"}) >= 5, outcomes
