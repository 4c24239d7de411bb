"""strata on Ray Serve: the HTTP gateway and each local model as their own deployments.

``strata serve --ray`` runs ``strata.edges.ray.app.run``; ``serve run
strata.edges.ray.app:build config=strata.toml`` deploys the same application with Ray's own
CLI. Importing this package does not import Ray.
"""
