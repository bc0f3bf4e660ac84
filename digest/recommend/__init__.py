"""Recommendations learned from each reader: vectors, profiles, batched scoring, reasons, seeds.

Pure: Papers and plain typed values in and out; no store, no SQL, no I/O, no printing.
Modules import one way: `errors` <- `vectorize` <- `profile` <- `score`; `vectorize` <-
`explain`; `bibtex` <- `seeds` (no numpy there, so the web can read a pasted BibTeX cheaply).
Import from the modules: this package re-exports nothing, so loading `seeds` never loads
scikit-learn.
"""
