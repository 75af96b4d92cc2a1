"""The thin command-line layer: argument parsing and printing; the work lives in the library."""
