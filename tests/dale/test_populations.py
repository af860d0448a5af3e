"""``bc.describe`` and ``bc.audit`` count a Dale layer's cells the same way (biocircuits.core.celltypes.populations):
presynaptic E and I units (the columns of W, counted here from ``dale_sign`` by hand) and, named apart, the
inhibitory interneurons a DANN layer holds."""

import io

import biocircuits as bc


def describe_cell(model, layer: str) -> str:
    """The ``dale`` column of ``layer``'s row in ``bc.describe(model)``'s table."""
    header, _, *rows = bc.describe(model, file=io.StringIO()).splitlines()
    start = header.index("dale")
    (row,) = [r for r in rows if r.split()[0] == layer]
    return row[start:].strip()


def test_column_layers_count_presynaptic_units_in_both(mlp):
    model = bc.apply(mlp(8, 16, 4), {"dale": {"excitatory_fraction": 0.75}})
    sign = model[2].dale_sign
    n_e, n_i = sum(1 for s in sign.tolist() if s > 0), sum(1 for s in sign.tolist() if s < 0)
    assert (n_e, n_i) == (12, 4)
    row = {r.name: r for r in bc.audit(model, spectra=False).layers}["2"]
    assert (row.excitatory, row.inhibitory, row.interneurons) == (n_e, n_i, 0)
    assert describe_cell(model, "2") == f"{n_e}E/{n_i}I" == str(row.populations)


def test_dann_interneurons_are_named_apart_from_presynaptic_units(mlp):
    model = bc.apply(mlp(6, 20, 10, 3), {"dale": {"architecture": "dann", "dann": {"inhibitory_fraction": 0.2}}})
    layer = model[2]
    n_i = layer.parametrizations.weight[0].weight_ie.shape[0]  # W_IE: (n_i, inputs), one row per interneuron
    n_inputs = layer.weight.shape[1]
    assert bool((layer.dale_sign > 0).all()) and n_i == 2
    row = {r.name: r for r in bc.audit(model, spectra=False).layers}["2"]
    # the inputs are all E; the layer's I cells are its interneurons, not I inputs (audit said "20E 2I" before)
    assert (row.excitatory, row.inhibitory, row.interneurons) == (n_inputs, 0, n_i)
    expected = f"{n_inputs}E/0I + {n_i} interneurons"
    assert describe_cell(model, "2") == expected
    assert str(row.populations) == expected and expected in str(bc.audit(model, spectra=False))


def test_a_layer_without_dale_has_no_counts(mlp):
    model = bc.apply(mlp(4, 3), {"feedback": {"rule": "fa"}})
    assert describe_cell(model, "0") == "-"
    assert bc.audit(model, spectra=False).layers[0].constrained is False
