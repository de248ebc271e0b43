"""A batch's programs, traced once per configuration: ``jax.export`` keeps the lowered program
on disk, so that running the same configuration again skips Python tracing.

JAX's persistent compilation cache (:func:`pgjax.use_compile_cache`) keeps XLA's compiled code,
but each run still traces and lowers its programs in Python before the cache is consulted —
seconds for a physics env (brax/ant: about 3.7 s of tracing and lowering in a 9.4 s second
start on a 2-core CPU). With the program store on (:func:`use_program_store`, which
:func:`pgjax.use_compile_cache` and so the ``pgjax`` command line turn on) the engine exports
``init`` and each chunk program (:func:`jax.export.export`) the first time, and later runs of
the same configuration load them: no tracing, and the compile is a hit in XLA's cache.

A stored program is found by a digest of everything that shapes it: the batch's configs
(every field), its name and arguments' shapes, dtypes and device placement, the devices'
platform and count, the source of pgjax itself, the versions of JAX and of every library that
is traced into it (flax, optax, chex, gymnax, brax, mujoco, playground, craftax) and the JAX
settings that change tracing. The engine stores only configs made of pgjax's own algorithms
and env ids (:func:`pgjax.engine.storable`): a user's algorithm, drift function, registered env
or env object is code that the digest cannot see, so those runs trace as usual. A stored file
that cannot be read is traced again and overwritten; files are read with ``pickle``, so the
store, like XLA's cache beside it, is a directory only its user writes to.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
from importlib import metadata
from pathlib import Path

import jax

__all__ = ["Program", "compiler_options", "program_digest", "program_store",
           "use_program_store"]

#: Libraries whose code is traced into a training program: their versions are in the digest.
TRACED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "chex", "numpy", "gymnax", "brax",
                   "mujoco", "mujoco-mjx", "playground", "craftax")
#: JAX settings that change what a function traces to.
TRACING_SETTINGS = ("jax_enable_x64", "jax_default_matmul_precision", "jax_default_prng_impl",
                    "jax_threefry_partitionable", "jax_numpy_rank_promotion")
SUFFIX = ".pgjax-program"

_store: list = [None]  # the directory, when on (use_program_store)


def compiler_options() -> dict | None:
    """The XLA options pgjax compiles its programs with (``jax.stages.Lowered.compile``'s
    ``compiler_options``), on CPU:

    * LLVM at -O1 rather than XLA's -O2 — a PPO program on CartPole compiled in 14–19% less
      time and ran as fast (paired runs, benchmarks/README.md: its run time is in library
      matmuls and per-kernel dispatch, not in LLVM's code);
    * XLA's ``tree_reduction_rewriter`` pass off (:data:`DISABLED_PASSES`, added to any
      ``--xla_disable_hlo_passes`` in ``XLA_FLAGS``). The pass splits every sum over more than
      32 elements into a windowed partial sum and a second sum, two more kernels to compile
      and dispatch each; without it the CartPole PPO program has a fifth fewer kernels. Sums
      of 33 to 2,048 float32 numbers (larger ones go to YNNPACK either way) were as accurate
      without it, against float64 (benchmarks/README.md).

    None on other platforms, and when JAX is set to compile with most optimisations off
    (``jax_disable_most_optimizations``), which it then does.

    Example:
      >>> import jax, pgjax
      >>> config = pgjax.make_config("ppo", "CartPole-v1", total_timesteps=2048)
      >>> train = jax.jit(pgjax.make_train(config)).lower(jax.random.key(0)).compile(
      ...     compiler_options=pgjax.compiler_options())
    """
    if jax.default_backend() != "cpu" or jax.config.read("jax_disable_most_optimizations"):
        return None
    return {"xla_backend_optimization_level": 1,
            "xla_disable_hlo_passes": ",".join(disabled_passes())}


#: XLA passes pgjax's CPU programs compile without (:func:`compiler_options`).
DISABLED_PASSES = ("tree_reduction_rewriter",)


def disabled_passes(xla_flags: str | None = None) -> tuple[str, ...]:
    """:data:`DISABLED_PASSES` after the passes ``XLA_FLAGS`` (or ``xla_flags``) disables with
    ``--xla_disable_hlo_passes``, which a program's own option would otherwise replace."""
    flags = os.environ.get("XLA_FLAGS", "") if xla_flags is None else xla_flags
    users = [name for flag in flags.split() if flag.startswith("--xla_disable_hlo_passes=")
             for name in flag.split("=", 1)[1].split(",") if name]
    return tuple(dict.fromkeys(users + list(DISABLED_PASSES)))


def use_program_store(path: str | os.PathLike | None) -> None:
    """Keep the engine's exported programs in ``path`` (None: off, the default)."""
    _store[0] = None if path is None else Path(path)


def program_store() -> Path | None:
    """Where exported programs are kept, None when the store is off."""
    return _store[0]


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """SHA-256 of pgjax's own files (its source and shipped data, by path)."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".pyc"):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def traced_versions() -> dict:
    """The installed version of each of :data:`TRACED_PACKAGES` (None when missing)."""
    versions = {}
    for name in TRACED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _placement(x) -> str:
    sharding = getattr(x, "sharding", None)
    if sharding is None:
        return "none"
    spec = getattr(sharding, "spec", None)
    platform = next(iter(sharding.device_set)).platform
    return f"{type(sharding).__name__}:{platform}:{len(sharding.device_set)}:{spec}"


def program_digest(description: dict, args) -> str:
    """The stored program's name: a digest of ``description`` (JSON-able: the configs and the
    program's name), the arguments' shapes, dtypes and placement, the devices, pgjax's source,
    :func:`traced_versions` and :data:`TRACING_SETTINGS`."""
    leaves, treedef = jax.tree.flatten(args)
    devices = jax.devices()
    record = {
        "description": description,
        "arguments": [(tuple(x.shape), str(x.dtype), _placement(x)) for x in leaves],
        "tree": str(treedef),
        "devices": [devices[0].platform, devices[0].device_kind, len(devices),
                    jax.process_count()],
        "pgjax": source_digest(),
        "versions": traced_versions(),
        "settings": {name: str(getattr(jax.config, name, None)) for name in TRACING_SETTINGS},
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Program:
    """``fn(*args)`` as one jitted program: traced by ``jax.jit`` as usual, or — when the
    store is on and ``description`` is given — exported once to the store and loaded from it
    on later runs. ``args`` may hold ``jax.ShapeDtypeStruct`` with shardings.
    """

    def __init__(self, fn, args, description: dict | None = None, donate_argnums=()):
        self.fn, self.args, self.donate = fn, args, tuple(donate_argnums)
        self.jitted = jax.jit(fn, donate_argnums=self.donate)  # one trace: shapes, then lowering
        self._exported = None
        store = program_store()
        if store is not None and description is not None:
            self._exported = self._load_or_export(store / (program_digest(description, args)
                                                           + SUFFIX))

    def out_shapes(self):
        """The outputs' ``jax.ShapeDtypeStruct`` tree (tracing only when not stored)."""
        if self._exported is None:
            return jax.eval_shape(self.jitted, *self.args)
        exported, out_tree = self._exported
        return jax.tree.unflatten(out_tree, [jax.ShapeDtypeStruct(a.shape, a.dtype)
                                             for a in exported.out_avals])

    def compile(self):
        """The compiled program, a callable on arguments shaped like ``args``."""
        if self._exported is None:
            return self.jitted.lower(*self.args).compile(compiler_options())
        exported, out_tree = self._exported
        donated = self._donated_leaves()
        compiled = jax.jit(exported.call, donate_argnums=donated).lower(
            *jax.tree.leaves(self.args)).compile(compiler_options())

        def call(*args):
            return jax.tree.unflatten(out_tree, compiled(*jax.tree.leaves(args)))

        return call

    def _donated_leaves(self) -> tuple:
        counts = [len(jax.tree.leaves(a)) for a in self.args]
        starts = [sum(counts[:i]) for i in range(len(counts))]
        return tuple(j for i in self.donate for j in range(starts[i], starts[i] + counts[i]))

    def _load_or_export(self, path: Path):
        try:
            with open(path, "rb") as f:
                stored = pickle.load(f)
            return jax.export.deserialize(bytearray(stored["exported"])), stored["out_tree"]
        except Exception:  # noqa: BLE001 — missing, damaged or of another version: trace again
            pass
        leaves, in_tree = jax.tree.flatten(self.args)
        out_trees = []

        def flat(*xs):
            out = self.fn(*jax.tree.unflatten(in_tree, xs))
            out_leaves, out_tree = jax.tree.flatten(out)
            out_trees.append(out_tree)
            return out_leaves

        avals = [jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
                 for x in leaves]
        placed = [a.sharding for a in avals if a.sharding is not None]
        platforms = [next(iter(placed[0].device_set)).platform] if placed else None
        exported = jax.export.export(jax.jit(flat), platforms=platforms)(*avals)
        _write(path, {"exported": exported.serialize(), "out_tree": out_trees[-1]})
        return exported, out_trees[-1]


def _write(path: Path, stored: dict) -> None:
    """Write ``stored`` to ``path`` atomically; a store that cannot be written is skipped (the
    run goes on, tracing again next time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(temporary, "wb") as f:
            pickle.dump(stored, f)
        os.replace(temporary, path)
    except OSError:
        pass
