import time, resource
import pgjax, jax, jax.numpy as jnp, numpy as np
from jax.sharding import PartitionSpec as P
W = jnp.eye(256) * 0.5
def body(x):
    return jax.lax.fori_loop(0, 3000, lambda i, x: jnp.tanh(x @ W + 0.1), x)
xs = jnp.ones((2, 64, 256))
mesh = jax.sharding.Mesh(np.array(jax.devices()), ("r",))
two = jax.jit(jax.shard_map(lambda x: jax.lax.map(body, x), mesh=mesh, in_specs=P("r"), out_specs=P("r"), check_vma=False))
one = jax.jit(lambda x: jax.lax.map(body, x))
for name, f in (("2 devices", two), ("1 device", one), ("2 devices", two), ("1 device", one)):
    f(xs).block_until_ready()
    r0 = resource.getrusage(resource.RUSAGE_SELF); t = time.perf_counter()
    f(xs).block_until_ready()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(name, "wall", round(time.perf_counter() - t, 2), "cpu", round(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, 2), flush=True)
