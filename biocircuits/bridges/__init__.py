"""Bridges to simulators. ``biocircuits.bridges.brian2`` needs the ``spiking`` extra (Brian2)."""
