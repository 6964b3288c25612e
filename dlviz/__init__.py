"""dlviz: small deep-learning models that train live, and the pictures that make textbook phenomena visible.

The library never imports streamlit outside ``dlviz.ui``: every demo runs the same in the page, the CLI,
the tests and the benchmark.
"""

__version__ = "0.1.0"
