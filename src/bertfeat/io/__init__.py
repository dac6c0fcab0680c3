"""Rows and files in: inputs with row-named errors, tables (CSV/TSV/Parquet, gz), CoNLL,
shipped datasets."""
