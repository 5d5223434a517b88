"""Training loop, hooks, evaluation and the workflows behind the CLI scripts."""
