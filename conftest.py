"""Collection rules for the package's own doctests (``testpaths`` has sk_mnist)."""

import importlib.util

# sk_mnist/_keras/compiled.py is the JAX backend's epoch loop and imports jax at
# its top; the test extra does not bring jax (CI runs those tests again with the
# jax extra), so without it the module cannot be imported for its doctests.
collect_ignore = []
if importlib.util.find_spec("jax") is None:
    collect_ignore.append("sk_mnist/_keras/compiled.py")
