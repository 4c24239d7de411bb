"""Issued API keys with budgets and rate limits (``strata keys``, ``/v1/keys``)."""
