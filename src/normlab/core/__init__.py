"""The NumPy-only core: axes (what ``per=`` means), statistics (engine, chunks, kernels, scan, quantile
store, accumulator), the formula table, normalizers, persistence. See ``docs/architecture.md``."""
