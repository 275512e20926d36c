# Run the locally installed R package mvsusieR (if present) on one data set of the discovery
# benchmark and save its PIPs, lfsr, posterior means and credible sets.  This script only
# *calls* the package; it contains none of its code.  benchmarks/discovery.py calls it only
# when `Rscript -e 'library(mvsusieR)'` succeeds.
#
# usage: Rscript run_mvsusie.R DIR [L]
#   DIR/X.csv  subjects x SNPs (centred allele counts, header = SNP IDs)
#   DIR/Y.csv  subjects x ROIs (covariate-adjusted phenotypes, header = ROI names)
# writes DIR/pip.csv (SNP PIP), DIR/lfsr.csv and DIR/coef.csv (SNP x ROI), DIR/sets.csv
# (credible_set, snp, purity = min |r| in the set) and DIR/timing.json (CPU seconds).
# Residual covariance: cov(Y), mvsusie's own default (see NOTES_DISCOVERY_LOO.md: a
# mash-style estimate from "null" SNPs breaks when few SNPs are null).
args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) stop("usage: run_mvsusie.R DIR [L]")
dir <- args[1]
L <- if (length(args) >= 2) as.integer(args[2]) else 10L
suppressPackageStartupMessages(library(mvsusieR))

X <- as.matrix(read.csv(file.path(dir, "X.csv"), check.names = FALSE))
Y <- as.matrix(read.csv(file.path(dir, "Y.csv"), check.names = FALSE))
snps <- colnames(X)
rois <- colnames(Y)

t0 <- proc.time()
prior <- create_mixture_prior(R = ncol(Y))
fit <- mvsusie(X, Y, L = L, prior_variance = prior, residual_variance = cov(Y),
               estimate_prior_variance = TRUE)
elapsed <- proc.time() - t0

pip <- fit$pip
lfsr <- fit$lfsr
coefs <- coef(fit)
if (nrow(coefs) == ncol(X) + 1) coefs <- coefs[-1, , drop = FALSE]   # drop the intercept
write.csv(data.frame(snp = snps, pip = pip), file.path(dir, "pip.csv"), row.names = FALSE)
write.csv(matrix(lfsr, ncol(X), ncol(Y), dimnames = list(snps, rois)),
          file.path(dir, "lfsr.csv"))
write.csv(matrix(coefs, ncol(X), ncol(Y), dimnames = list(snps, rois)),
          file.path(dir, "coef.csv"))

sets <- fit$sets$cs
rows <- list()
if (length(sets) > 0) {
  purity <- fit$sets$purity
  for (k in seq_along(sets)) {
    label <- names(sets)[k]
    if (is.null(label) || label == "") label <- paste0("L", k)
    rows[[k]] <- data.frame(credible_set = label, snp = snps[sets[[k]]],
                            purity = if (is.null(purity)) NA else purity[k, 1])
  }
}
out <- if (length(rows)) do.call(rbind, rows) else
  data.frame(credible_set = character(), snp = character(), purity = numeric())
write.csv(out, file.path(dir, "sets.csv"), row.names = FALSE)

cpu <- sum(elapsed[c("user.self", "sys.self")], elapsed[c("user.child", "sys.child")],
           na.rm = TRUE)
writeLines(sprintf('{"cpu_seconds": %.6f, "wall_seconds": %.6f, "L": %d}', cpu,
                   elapsed[["elapsed"]], L), file.path(dir, "timing.json"))
