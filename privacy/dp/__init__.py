"""Differential privacy: settings, accounting, the partner ledger, DP-SGD, noisy counts, reports."""
