"""The three patterns, each written once against the ``Transport`` protocol."""
