"""Routing: right-size every request.

- ``settings``: routes (tiers small → big with thresholds) as one ``Settings.routes`` field
- ``signals``: the confidence-signal contract, its registry and the built-in signals
- ``cascade``: the ``Router`` dispatcher that escalates on low confidence and degrades
- ``cost`` and ``ledger``: prices per model and one ledger row per chat request
- ``calibrate``, ``grading``, ``outcomes``: fitting thresholds on labelled data
- ``api`` and ``cli``: ``GET /v1/usage``, ``GET /v1/routes``; ``strata routes|calibrate|usage``

Nothing is imported here: ``strata.core.settings`` imports ``routing.settings`` and must not pull
in the engine through this package.
"""
