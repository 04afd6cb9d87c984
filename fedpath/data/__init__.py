"""From raw logs to sessions and prediction cases."""
