"""The application layer: templates with typed inputs, brand voices, and feedback that
turns accepted edits into few-shot examples for the next answer.

Import the parts from their modules; this package imports nothing, so ``strata --help``,
which loads the feature, does not pay for templates, voices and layers it never touches."""
