"""Prefect flows: one per file, thin orchestration over lof/."""
