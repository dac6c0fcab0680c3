"""Cross-validation statistics and tag scores."""
