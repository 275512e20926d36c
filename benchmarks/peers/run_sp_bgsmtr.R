# Run the locally installed R package bgsmtr's spatial model sp_bgsmtr (Song et al. 2022)
# on its own example data, for a side-by-side benchmark.  This script only *calls* the
# package; it contains none of its code.  The example data (ADNI-derived) is read from the
# installed package at run time and written only to the caller's temporary folder.
#
# usage:
#   Rscript run_sp_bgsmtr.R export OUT_DIR
#       subject x SNP and subject x measure CSVs, the 12 x 12 neighbourhood matrix, and the
#       left/right pairs sp_bgsmtr forms from the example's own measure names
#   Rscript run_sp_bgsmtr.R rho_probe OUT_DIR RHO1,RHO2,...
#       the spatial parameter the MFVB actually uses for each requested one (and the default)
#   Rscript run_sp_bgsmtr.R mfvb OUT_DIR RHO LAMBDASQ SEED
#   Rscript run_sp_bgsmtr.R mcmc OUT_DIR RHO LAMBDASQ ITER_NUM BURN_IN SEED
#       one fit; the measures are renamed L_01..L_12 / R_01..R_12 (measure i paired with
#       measure i + 28, the pairing the data's correlations show) so that sp_bgsmtr's
#       sort-by-name pairing is the right one; A = the example's neighbourhood matrix.
#       Writes W_post_mean.csv (SNP x measure), meta.txt and, for MCMC, the Sigma draws.
#       An error of the package is caught and its text written to error.txt (exit 0).
args <- commandArgs(trailingOnly = TRUE)
mode <- args[1]; out_dir <- args[2]
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
suppressPackageStartupMessages(library(bgsmtr))
data("sp_bgsmtr_example_data", package = "bgsmtr", envir = environment())
ex <- sp_bgsmtr_example_data
X <- ex$SNP_data                                 # SNP x subject (minor-allele counts)
Y <- as.matrix(ex$BrainMeasures)                 # measure x subject
A <- ex$neighbourhood_structure                  # 12 x 12, one hemisphere
meta <- c(sprintf("bgsmtr_version=%s", as.character(packageVersion("bgsmtr"))),
          sprintf("r_version=%s", R.version.string),
          sprintf("blas=%s", if (is.null(extSoftVersion()["BLAS"])) "" else
            extSoftVersion()[["BLAS"]]))

if (mode == "export") {
  # the example's subjects are unnamed (columns of X) or V1..V632 (of Y), in one order
  subj <- sprintf("subject_%03d", seq_len(ncol(X)))
  if (ncol(Y) != ncol(X)) stop("X and Y of the example have different subject counts")
  write.csv(data.frame(subject = subj, t(X), check.names = FALSE),
            file.path(out_dir, "snp_data.csv"), row.names = FALSE)
  write.csv(data.frame(subject = subj, t(Y), check.names = FALSE),
            file.path(out_dir, "brain_measures.csv"), row.names = FALSE)
  write.csv(A, file.path(out_dir, "neighbourhood.csv"), row.names = FALSE)
  # the pairing sp_bgsmtr builds from the names as given: rows sorted by name (character
  # order), first half = left, second half = right, paired in order
  p <- nrow(Y); s <- sort(rownames(Y))
  write.csv(data.frame(left = s[1:(p / 2)], right = s[(p / 2 + 1):p]),
            file.path(out_dir, "pairs_from_names.csv"), row.names = FALSE)
  # the example's documented call names a component that does not exist
  meta <- c(meta, sprintf("documented_A_component_is_null=%s",
                          is.null(ex$neighborhood_structure)),
            paste0("components=", paste(names(ex), collapse = ",")))
  writeLines(meta, file.path(out_dir, "meta.txt"))
  quit(status = 0)
}

p <- nrow(Y)
if (mode == "rho_probe") {
  # the spatial parameter sp_bgsmtr's MFVB uses for each requested rho, read inside its
  # first iteration (the statement recording the mean of q(rho)); a small slice of the
  # example (30 SNPs, 200 subjects) keeps the set-up cheap: the value does not depend on
  # the data.  The iterations are stopped there by the tracer.
  rhos <- as.numeric(strsplit(args[3], ",")[[1]])
  f_body <- as.list(body(get("sp_bgsmtr_mfvb", envir = asNamespace("bgsmtr"))))
  w <- which(vapply(f_body, function(e) is.call(e) && identical(e[[1]], as.name("while")),
                    logical(1)))
  loop <- as.list(f_body[[w]][[3]])
  k <- which(vapply(loop, function(e) any(grepl("^qmu\\[iter", deparse(e))), logical(1)))
  if (length(w) != 1 || length(k) != 1) stop("could not find the rho step of sp_bgsmtr_mfvb")
  .probe <- new.env()
  trace("sp_bgsmtr_mfvb", where = asNamespace("bgsmtr"), print = FALSE,
        at = list(c(w, 3, k)),
        tracer = quote({ .probe$rho <- qrho_mu; stop("rho probed") }))
  Ys <- Y[, 1:200]; Xs <- X[1:30, 1:200]
  rownames(Ys) <- c(sprintf("L_%02d", 1:12), sprintf("R_%02d", 1:12))
  used <- vapply(c(rhos, NA), function(r) {
    .probe$rho <- NA_real_
    capture.output(try(asNamespace("bgsmtr")$sp_bgsmtr_mfvb(
      X = Xs, Y = Ys, rho = if (is.na(r)) NULL else r, A = A, lambdasq = 1000,
      FDR_opt = FALSE), silent = TRUE))
    .probe$rho
  }, numeric(1))
  write.csv(data.frame(rho_requested = c(rhos, NA), rho_used = used),
            file.path(out_dir, "rho_probe.csv"), row.names = FALSE)
  writeLines(meta, file.path(out_dir, "meta.txt"))
  quit(status = 0)
}
if (p != 24) stop("expected the 24 measures of sp_bgsmtr_example_data")
new_names <- c(sprintf("L_%02d", 1:12), sprintf("R_%02d", 1:12))
rownames(Y) <- new_names                         # measures 1..12 left, 29..40 right
rho <- as.numeric(args[3]); lambdasq <- as.numeric(args[4])
ns <- asNamespace("bgsmtr")
.sp <- new.env()
if (mode == "mfvb") {
  seed <- as.integer(args[5])
  # the spatial parameter the variational iterations actually used, read at exit
  trace("sp_bgsmtr_mfvb", where = ns, print = FALSE,
        exit = quote({ .sp$qrho_mu <- qrho_mu; .sp$iter <- iter }))
  # the exported sp_bgsmtr() passes FDR_opt = TRUE whatever the caller sets, and the FDR
  # step compiles a C++ function and draws 10,000 samples per SNP; only the posterior means
  # are compared here, so the MFVB function itself is called without it
  call <- function() ns$sp_bgsmtr_mfvb(X = X, Y = Y, rho = rho, A = A,
                                       lambdasq = lambdasq, FDR_opt = FALSE)
} else if (mode == "mcmc") {
  iter_num <- as.integer(args[5]); burn_in <- as.integer(args[6]); seed <- as.integer(args[7])
  trace("sp_bgsmtr_mcmc", where = ns, print = FALSE,
        exit = quote({ .sp$Sig <- Sig }))
  call <- function() sp_bgsmtr(X = X, Y = Y, method = "MCMC", rho = rho, A = A,
                               lambdasq = lambdasq, FDR_opt = TRUE, WAIC_opt = TRUE,
                               iter_num = iter_num, burn_in = burn_in)
  meta <- c(meta, sprintf("iter_num=%d", iter_num), sprintf("burn_in=%d", burn_in))
} else stop("mode must be export, mfvb or mcmc")
set.seed(seed)
cpu0 <- proc.time()
res <- NULL
err <- NULL
log <- capture.output(res <- tryCatch(call(), error = function(e) { err <<- e; NULL }))
cpu <- proc.time() - cpu0
meta <- c(meta, sprintf("mode=%s", mode), sprintf("rho=%.10g", rho),
          sprintf("lambdasq=%.10g", lambdasq), sprintf("seed=%d", seed),
          sprintf("cpu_fit=%.4f", cpu[["user.self"]] + cpu[["sys.self"]]),
          sprintf("elapsed_fit=%.4f", cpu[["elapsed"]]),
          sprintf("log_lines=%d", length(log)))
if (!is.null(err)) {
  writeLines(c(conditionMessage(err), paste(deparse(conditionCall(err)), collapse = " ")),
             file.path(out_dir, "error.txt"))
  writeLines(tail(log, 20), file.path(out_dir, "log_tail.txt"))
  writeLines(c(meta, "status=error"), file.path(out_dir, "meta.txt"))
  quit(status = 0)
}
if (mode == "mfvb") {
  s <- res$MFVB_summaries
  W <- s$W_post_mean
  meta <- c(meta, sprintf("iterations=%d", s[["Number of Iteration"]]),
            sprintf("rho_used=%.10g", .sp$qrho_mu),
            sprintf("lambdasq_used=%.10g", res$lambdasq_est),
            sprintf("lower_bound=%.10g", res$lower_boud))
  write.csv(s$Sigma_post_mean, file.path(out_dir, "Sigma_post_mean.csv"), row.names = FALSE)
} else {
  W <- res$Gibbs_W_summaries$W_post_mean
  keep <- (burn_in + 1):iter_num
  Sig <- .sp$Sig[keep, , , drop = FALSE]
  write.csv(data.frame(s11 = Sig[, 1, 1], s12 = Sig[, 1, 2], s22 = Sig[, 2, 2]),
            file.path(out_dir, "Sigma_draws.csv"), row.names = FALSE)
  meta <- c(meta, sprintf("WAIC=%.10g", res$WAIC))
}
write.csv(W, file.path(out_dir, "W_post_mean.csv"))
writeLines(c(meta, "status=ok"), file.path(out_dir, "meta.txt"))
