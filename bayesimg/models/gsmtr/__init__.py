"""Group-sparse multitask regression (bgsmtr's density): :mod:`.model` (the model, its math
in the docstring) and :mod:`.gibbs` (its exact blocked Gibbs kernel)."""

from bayesimg.models.gsmtr.model import (
    PARAMETERIZATIONS,
    GroupSparseMTR,
    gsmurfs_objective,
    whitening_transform,
)

# the class keeps the path it has always had (bayesimg.models.gsmtr.GroupSparseMTR): fit_many's
# job fingerprints name it, so saved result folders stay recognised
GroupSparseMTR.__module__ = __name__

__all__ = ["PARAMETERIZATIONS", "GroupSparseMTR", "gsmurfs_objective", "whitening_transform"]
