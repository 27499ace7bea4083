"""deephide: unlearnable image datasets by semantic deep hiding.

Importing the package has no side effects: registries are filled when their
subpackage is imported (``deephide.data``, ``deephide.models``, ...).
"""

__version__ = "0.1.0"
