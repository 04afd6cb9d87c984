"""Hydra configuration groups (data/, model/, train/, ...); shipped as package data."""
