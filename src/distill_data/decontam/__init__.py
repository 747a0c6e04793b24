"""Benchmark decontamination: word n-grams of benchmark texts (``index``), checked against each
example's prompt, analysis and final (``match``) before any budget is counted. docs/decontamination.md."""
