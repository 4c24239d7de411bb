"""The knowledge base: ingest, chunk, embed, hybrid search, grounded answers.

Import the parts from their modules (``strata.features.knowledge.base`` …); this package imports
nothing heavy so ``strata --help`` and servers that never ground stay fast.
"""
