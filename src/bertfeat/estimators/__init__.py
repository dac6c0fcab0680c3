"""scikit-learn faces: validate, assemble, feature names (one encoder-backed base)."""
