# One XLA CPU device per core for the tests (before the first JAX computation), as the CLI
# and the benchmarks do: seeded runs split across them.
import pgjax

pgjax.use_host_devices()
