"""The deployed coordinator service: SuperLink, campaigns, checkpoints, status, publication."""
