# Run the locally installed R package bnClustOmics (Suter et al. 2022; if present) on one
# continuous data matrix and save its cluster labels and cluster DAGs for a side-by-side
# benchmark.  This script only *calls* the package; it contains none of its code.
#
# usage: Rscript run_bnclustomics.R DATA_CSV K OUT_DIR [SEED]
#   DATA_CSV  numeric matrix with a header: samples as rows, nodes (all continuous) as
#             columns; a leading column with an empty header is taken as row names
#   K         number of clusters (kclust)
#   OUT_DIR   gets labels.csv (one label in 1..K per sample, column "label"),
#             dag_<k>.csv for k = 1..K (p x p 0/1 adjacency, row = parent, col = child),
#             probs.csv (final EM membership probabilities), log.txt and timing.json
#   SEED      seed passed to bnclustOmics (default 100, the package default)
# The library is found through R_LIBS, or BAYESIMG_R_LIBS when set.
# BAYESIMG_BNC_EPMATRIX=1 also runs the package's default posterior edge sampling
# (epmatrix = TRUE), which does not change the labels or DAGs written here but costs extra
# time; it is off unless asked for.
args <- commandArgs(trailingOnly = TRUE)
if (!length(args) %in% 3:4) stop("usage: run_bnclustomics.R DATA_CSV K OUT_DIR [SEED]")
data_csv <- args[1]; K <- as.integer(args[2]); out_dir <- args[3]
seed <- if (length(args) == 4) as.integer(args[4]) else 100L
if (is.na(K) || K < 2) stop("K must be an integer >= 2")
epmatrix <- Sys.getenv("BAYESIMG_BNC_EPMATRIX", "0") %in% c("1", "true", "TRUE")
r_libs <- Sys.getenv("BAYESIMG_R_LIBS")
if (nzchar(r_libs)) .libPaths(c(r_libs, .libPaths()))
suppressPackageStartupMessages(library(bnClustOmics))
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

X <- read.csv(data_csv, check.names = FALSE)
if (names(X)[1] == "") { rownames(X) <- X[[1]]; X <- X[-1] }
X <- as.matrix(X)
storage.mode(X) <- "double"
if (anyNA(X)) stop("missing or non-numeric values in ", data_csv)
if (is.null(rownames(X)) || identical(rownames(X), as.character(seq_len(nrow(X)))))
  rownames(X) <- paste0("s", seq_len(nrow(X)))
nodes <- colnames(X)
if (anyDuplicated(nodes)) stop("duplicated node names in ", data_csv)
omicdata <- list(X = X)
# bnInfo() fails on a list of one matrix (it rbinds the row names of the omic types and
# apply()s over the result, which is then a plain vector), so its node bookkeeping is
# built from the same columns split into two continuous types.  With the default
# blacklist and no penalisation the type split is used nowhere else: bnclustOmics()
# cbinds the matrices back into X and scores all nodes with one BGe score.
half <- ceiling(ncol(X) / 2)
bnnames <- bnInfo(list(X1 = X[, 1:half, drop = FALSE], X2 = X[, -(1:half), drop = FALSE]),
                  types = c("c", "c"), omics = c("X1", "X2"))
if (!identical(unname(bnnames$allnamesonebn), nodes)) stop("bnInfo renamed the nodes")

# Only kclust and seed are set; everything else is the package default (its documented
# example bnclustOmics(simdata, bnnames, maxEM = 4, kclust = 2, startpoint = "mclustPCA")
# lowers maxEM only to run fast): blacklist = NULL (only self-loops barred), no edge
# penalisation, startpoint = "mclustPCA", maxEM = 10, hardlim = 6, plus1it = 4, nit = 5,
# commonspace = TRUE, BGe score for all-continuous data.
set.seed(seed)
cpu0 <- proc.time()
log <- capture.output(fit <- bnclustOmics(omicdata, bnnames, kclust = K, seed = seed,
                                          epmatrix = epmatrix))
cpu <- proc.time() - cpu0

write_atomic <- function(writer, name) {
  tmp <- file.path(out_dir, paste0(".", name, ".tmp"))
  writer(tmp)
  if (!file.rename(tmp, file.path(out_dir, name))) stop("could not write ", name)
}
labels <- as.integer(clusters(fit))
if (length(labels) != nrow(X) || any(!labels %in% seq_len(K))) stop("unexpected labels")
for (k in seq_len(K)) {
  A <- 1L * (as.matrix(dags(fit)[[k]]) != 0)
  dimnames(A) <- list(nodes, nodes)
  write_atomic(function(f) write.csv(A, f), sprintf("dag_%d.csv", k))
}
probs <- fit$lambdas
colnames(probs) <- paste0("cluster", seq_len(K))
write_atomic(function(f) write.csv(probs, f, row.names = FALSE), "probs.csv")
write_atomic(function(f) writeLines(log, f), "log.txt")
num <- function(x) formatC(x, digits = 6, format = "f")
timing <- c(
  "{",
  sprintf('  "cpu_seconds": %s,', num(sum(cpu[c("user.self", "sys.self", "user.child",
                                                "sys.child")], na.rm = TRUE))),
  sprintf('  "cpu_user": %s,', num(sum(cpu[c("user.self", "user.child")], na.rm = TRUE))),
  sprintf('  "cpu_system": %s,', num(sum(cpu[c("sys.self", "sys.child")], na.rm = TRUE))),
  sprintf('  "elapsed_seconds": %s,', num(cpu[["elapsed"]])),
  sprintf('  "em_iterations": %d,', as.integer(fit$EMit)),
  sprintf('  "K": %d,', K), sprintf('  "seed": %d,', seed),
  sprintf('  "n_samples": %d,', nrow(X)), sprintf('  "n_nodes": %d,', ncol(X)),
  sprintf('  "epmatrix": %s,', if (epmatrix) "true" else "false"),
  sprintf('  "call": "bnclustOmics(list(X = X), bnInfo(list(X1, X2), c(\\"c\\", \\"c\\"), c(\\"X1\\", \\"X2\\")), kclust = %d, seed = %d, epmatrix = %s)",',
          K, seed, if (epmatrix) "TRUE" else "FALSE"),
  sprintf('  "bnClustOmics_version": "%s",', as.character(packageVersion("bnClustOmics"))),
  sprintf('  "BiDAG_version": "%s",', as.character(packageVersion("BiDAG"))),
  sprintf('  "r_version": "%s"', R.version.string),
  "}")
# labels last: its presence marks a finished run
write_atomic(function(f) writeLines(timing, f), "timing.json")
write_atomic(function(f) write.csv(data.frame(label = labels), f, row.names = FALSE),
             "labels.csv")
