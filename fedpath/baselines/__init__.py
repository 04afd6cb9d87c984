"""What a data scientist tries before a neural path model: the bar fedpath's heads must clear.

Each baseline predicts the next action and the conversion target of a prefix from the same cases
fedpath's models see, and answers with ``Predictions`` (no item scores), so one evaluation and one
bootstrap score them all.
"""
