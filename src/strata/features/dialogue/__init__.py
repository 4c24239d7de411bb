"""Dialogue that outlives the context window: sessions stored in SQLite, a rolling summary,
retrieval over earlier turns, and a prompt fitted exactly to the model's window.

Import the parts from their modules; this package imports nothing, so ``strata --help``,
which loads the feature, does not pay for the memory builder and its imports."""
