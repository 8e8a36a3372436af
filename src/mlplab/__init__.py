"""mlplab."""
