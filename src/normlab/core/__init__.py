"""The NumPy-only core: axes (what ``per=`` means), statistics, normalizers, persistence."""
