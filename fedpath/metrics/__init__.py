"""Evaluation metrics: ranking, next-action, conversion, calibration, funnel."""
