"""Latent-confounder estimators."""
