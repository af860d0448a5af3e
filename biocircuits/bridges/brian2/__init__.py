"""Brian2 bridge: build a layer's (or a chain of layers') feedback pathway as neurons and synapses, drive it with
error streams e(t), and measure how faithfully it delivers B^T e: tracking, frequency response, Dale's cost, and
the spiking noise as ``phases:`` settings for torch training.

Modules: [`streams`][biocircuits.bridges.brian2.streams] (waveforms, the error recorder),
[`modes`][biocircuits.bridges.brian2.modes] (rate / spiking modes), [`wiring`][biocircuits.bridges.brian2.wiring]
(synapse groups, tables, gain control, relay interneurons), [`relays`][biocircuits.bridges.brian2.relays] (Dale
relays and their rectified noise), [`pathway`][biocircuits.bridges.brian2.pathway] (the constant-pattern check,
tracking, frequency response), [`metrics`][biocircuits.bridges.brian2.metrics],
[`chain`][biocircuits.bridges.brian2.chain] (multi-layer pathways with derivative gating) and
[`calibration`][biocircuits.bridges.brian2.calibration] (spike budget -> ``phases:``).
Needs the ``spiking`` extra; importing this package without Brian2 works, simulating raises one clear ImportError.
"""

from ._backend import INSTALL_HINT, b2, feedback_matrix, require_brian2
from .calibration import Calibration, calibrate_spikes
from .chain import ChainReport, check_chain
from .metrics import FrequencyPoint, Tracking
from .modes import MODES, PathwayMode, RateMode, SpikingMode, Trace, make_mode
from .pathway import PathwayReport, PatternResult, TrackingReport, check_pathway, frequency_response, track
from .relays import Relays, relay_bias
from .streams import WAVEFORMS, ErrorRecorder, ErrorStream

__all__ = [
    "INSTALL_HINT",
    "MODES",
    "WAVEFORMS",
    "Calibration",
    "ChainReport",
    "ErrorRecorder",
    "ErrorStream",
    "FrequencyPoint",
    "PathwayMode",
    "PathwayReport",
    "PatternResult",
    "RateMode",
    "Relays",
    "SpikingMode",
    "Trace",
    "Tracking",
    "TrackingReport",
    "b2",
    "calibrate_spikes",
    "check_chain",
    "check_pathway",
    "feedback_matrix",
    "frequency_response",
    "make_mode",
    "relay_bias",
    "require_brian2",
    "track",
]
