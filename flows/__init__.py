"""Prefect flows: one per file, thin orchestration over lof/.

Each flow calls plain functions of lof's packages as tasks and decides nothing itself; the
deployment layout (prefect.yaml entrypoints ``flows/<name>.py:<flow>``) is fixed. May import any
lof package; only the CLI and ``lof demo`` import flows.
"""
