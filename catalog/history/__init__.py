"""The catalog's history: what each event changed, defaults before and after, answers as of an
earlier event, and the difference between any two catalogs."""
