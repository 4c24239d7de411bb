"""Distillation: specialists trained on the big tier's answers to closed-set requests, put
in front of a route's cascade (``strata.core.protocols.Specialist``)."""
