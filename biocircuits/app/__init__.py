"""The commands' wing: the ``biocircuits`` command line, rule comparisons, plots and pathway checks."""
