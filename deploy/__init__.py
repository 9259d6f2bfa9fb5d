"""Serving the lab from several replicas behind HAProxy (docs/serving.md): ``python -m deploy.local``."""
