"""Group-sparse multitask regression (bgsmtr's density): :mod:`.model` (the model, its math
in the docstring) and :mod:`.gibbs` (its exact blocked Gibbs kernel); its sibling for
discovery, the bi-level spike-and-slab :mod:`.spike_slab` (kernel :mod:`.spike_slab_gibbs`); its
sibling with left/right-coupled noise, :mod:`.bilateral` (kernel :mod:`.bilateral_gibbs`)."""

from bayesimg.models.gsmtr.bilateral import BilateralGSMTR
from bayesimg.models.gsmtr.model import (
    PARAMETERIZATIONS,
    GroupSparseMTR,
    gsmurfs_objective,
    whitening_transform,
)
from bayesimg.models.gsmtr.spike_slab import SpikeSlabMTR

# the class keeps the path it has always had (bayesimg.models.gsmtr.GroupSparseMTR): fit_many's
# job fingerprints name it, so saved result folders stay recognised
GroupSparseMTR.__module__ = __name__
SpikeSlabMTR.__module__ = __name__
BilateralGSMTR.__module__ = __name__

__all__ = ["PARAMETERIZATIONS", "BilateralGSMTR", "GroupSparseMTR", "SpikeSlabMTR",
           "gsmurfs_objective", "whitening_transform"]
