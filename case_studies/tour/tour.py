# %% [markdown]
# # A tour of bayesimg: four model families, one set of drivers
#
# Every fit below is an ArviZ DataTree with named dims and a per-subject `log_likelihood`,
# fitted by the same `bi.fit` and compared by the same `bi.compare`. The notebook runs at a
# reduced size in CI (`BAYESIMG_NOTEBOOK_SIZE=ci`); unset it for the full size.

# %%
import os

import numpy as np

import bayesimg as bi

CI = os.environ.get("BAYESIMG_NOTEBOOK_SIZE", "full") == "ci"
RUN = dict(chains=2, warmup=150, draws=150) if CI else dict(chains=4, warmup=500, draws=1000)
GENES = ["MCM6", "AGT", "TTN"] if CI else None
print("size:", "ci" if CI else "full", RUN)

# %% [markdown]
# ## Data: real 1000 Genomes genotypes, simulated imaging phenotypes
# 503 Europeans, SNPs grouped into genes and LD-pruned; 8 brain measures with 12 planted
# effects (`bi.data.load_demo_truth()`).

# %%
data = bi.data.load_demo(genes=GENES, ld_prune_r2=0.8, min_maf=0.05)
truth = bi.data.load_demo_truth()
data

# %% [markdown]
# ## 1. Group-sparse multitask regression (bgsmtr's prior), exact Gibbs

# %%
gsmtr = bi.fit(bi.models.GroupSparseMTR(lambda1=20, lambda2=20), data, method="gibbs",
               seed=1, progress=False, **RUN)
gsmtr

# %%
gsmtr.diagnose()

# %%
bi.report.plot_forest(gsmtr, top=12)

# %% [markdown]
# ## 2. Discoveries: bi-level spike-and-slab selection
# Gene and SNP inclusion probabilities, credible sets of SNPs in LD, and a table of
# SNP→ROI effects at a Bayesian false discovery rate of 5% (in the phenotypes' units).

# %%
spike = bi.fit(bi.models.SpikeSlabMTR(), data, method="gibbs", seed=1, progress=False, **RUN)
found = spike.discoveries(fdr=0.05)
found.head(12)

# %%
planted = set(zip(truth.snp, truth.phenotype, strict=True))
hits = set(zip(found.snp, found.phenotype, strict=True))
print(f"planted effects in the panel: {sum(s in set(data.snp_names) for s in truth.snp)}, "
      f"found at FDR 5%: {len(planted & hits)}, other discoveries: {len(hits - planted)}")

# %% [markdown]
# ## 3. Generalized low-rank regression, and a model comparison

# %%
glrr = bi.fit(bi.models.GLRR(rank=2), data, method="gibbs", seed=1, progress=False, **RUN)
bi.compare({"gsmtr": gsmtr, "spike_slab": spike, "glrr": glrr}, ic="loo")

# %% [markdown]
# ## 4. Prediction for subjects the fit never saw
# Fit on 400 subjects, predict the other 103 (phenotypes in their original units).

# %%
train, test = data.subset_subjects(np.arange(400)), data.subset_subjects(np.arange(400, 503))
held = bi.fit(bi.models.GroupSparseMTR(lambda1=20, lambda2=20), train, method="gibbs",
              seed=2, progress=False, **RUN)
pred = held.predict(test)
pred

# %% [markdown]
# ## 5. Multi-view factor analysis (simulated omics views)

# %%
from bayesimg.models.factor import outputs as factor_outputs

views, factor_truth = bi.data.simulate_factor(n=120 if CI else 300,
                                              sizes={"rna": 60, "protein": 30}, n_factors=3,
                                              seed=0)
factors = bi.fit(bi.models.MultiViewFactor(5), views, method="gibbs", seed=1, progress=False,
                 **RUN)
factor_outputs.variance_explained(factors, views)

# %% [markdown]
# ## 6. Bayesian-network mixture: patient subtypes with their own networks

# %%
from bayesimg.metrics import adjusted_rand_index
from bayesimg.models.bnmix import cluster_labels

nodes, bn_truth = bi.data.simulate_bnmix(n=450, n_nodes=8, n_clusters=2, seed=0)
mix = bi.fit(bi.models.BNMix(2), nodes, method="gibbs", seed=1, progress=False, **RUN)
labels = cluster_labels(mix)
# the subtypes differ only in their networks: even the true model's classifier (the oracle)
# cannot separate them perfectly
print("ARI against the true subtypes:", round(adjusted_rand_index(bn_truth.labels, labels), 3),
      "| oracle:", round(adjusted_rand_index(bn_truth.labels, bn_truth.oracle_labels), 3))
labels.to_pandas().head()
