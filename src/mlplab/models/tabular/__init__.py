"""Tabular families: numeric and categorical columns in, class logits or a regression value out."""
