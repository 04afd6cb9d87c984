"""Next-step predictors behind one contract (see ``base.NextStepModel``)."""
