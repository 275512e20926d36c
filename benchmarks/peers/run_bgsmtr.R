# Run the locally installed R package bgsmtr (if present) on a bgsmtr-layout folder and
# save its posterior draws for a side-by-side benchmark.  This script only *calls* the
# package; it contains none of its code.  bgsmtr returns summaries only, so the draws it
# already holds (W_est, sig) are read off at function exit with base R's trace().
#
# usage: Rscript run_bgsmtr.R DATA_DIR OUT_DIR LAM1 LAM2 ITER_NUM BURN_IN SEED
args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 7) stop("usage: run_bgsmtr.R DATA_DIR OUT_DIR LAM1 LAM2 ITER_NUM BURN_IN SEED")
data_dir <- args[1]; out_dir <- args[2]
lam1 <- as.numeric(args[3]); lam2 <- as.numeric(args[4])
iter_num <- as.integer(args[5]); burn_in <- as.integer(args[6]); seed <- as.integer(args[7])
suppressPackageStartupMessages(library(bgsmtr))
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

X <- as.matrix(read.csv(file.path(data_dir, "snp_data.csv"), row.names = 1, check.names = FALSE))
Y <- as.matrix(read.csv(file.path(data_dir, "brain_measures.csv"), row.names = 1,
                        check.names = FALSE))
groups <- read.csv(file.path(data_dir, "snp_groups.csv"), stringsAsFactors = FALSE)
group <- groups$gene[match(colnames(X), groups$snp)]
if (anyNA(group)) stop("SNPs without a gene in snp_groups.csv")

# CPU time of the Gibbs loop itself: proc.time() just before and just after the
# top-level `for (iter in ...)` statement of bgsmtr.waic (found by inspecting its body)
f_body <- as.list(body(get("bgsmtr.waic", envir = asNamespace("bgsmtr"))))
loop_step <- which(vapply(f_body, function(e) is.call(e) && identical(e[[1]], as.name("for")) &&
                            identical(e[[2]], as.name("iter")), logical(1)))
if (length(loop_step) != 1) stop("could not find the Gibbs loop in bgsmtr.waic")
.bg_clock <- list()
trace("bgsmtr.waic", where = asNamespace("bgsmtr"), print = FALSE,
      at = c(loop_step, loop_step + 1),
      tracer = quote(.GlobalEnv$.bg_clock[[length(.GlobalEnv$.bg_clock) + 1]] <- proc.time()),
      exit = quote({ .GlobalEnv$.bg_W <- W_est; .GlobalEnv$.bg_sig <- sig }))
set.seed(seed)
cpu0 <- proc.time()
log <- capture.output(res <- bgsmtr(X = t(X), Y = t(Y), group = group, tuning = "WAIC",
                                    lam_1_fixed = lam1, lam_2_fixed = lam2,
                                    iter_num = iter_num, burn_in = burn_in))
cpu <- proc.time() - cpu0
times <- as.numeric(sub(".*time: *([0-9.eE+-]+).*", "\\1", grep("time:", log, value = TRUE)))

keep <- burn_in:iter_num     # the draws bgsmtr itself summarises
W <- .GlobalEnv$.bg_W[keep, , , drop = FALSE]
sig <- .GlobalEnv$.bg_sig[keep]
con <- file(file.path(out_dir, "W_draws.f64"), "wb"); writeBin(as.vector(W), con); close(con)
con <- file(file.path(out_dir, "sigma2_draws.f64"), "wb"); writeBin(sig, con); close(con)
write.csv(res$Gibbs_W_summaries$W_post_mean, file.path(out_dir, "W_post_mean.csv"))
meta <- c(
  sprintf("draws=%d", dim(W)[1]), sprintf("snps=%d", dim(W)[2]),
  sprintf("phenotypes=%d", dim(W)[3]), "layout=R column-major (draw fastest)",
  sprintf("iter_num=%d", iter_num), sprintf("burn_in=%d", burn_in),
  sprintf("lam_1=%.10g", lam1), sprintf("lam_2=%.10g", lam2), sprintf("seed=%d", seed),
  sprintf("WAIC=%.10g", res$WAIC),
  sprintf("cpu_user=%.4f", cpu[["user.self"]] + cpu[["user.child"]]),
  sprintf("cpu_system=%.4f", cpu[["sys.self"]] + cpu[["sys.child"]]),
  sprintf("elapsed_total=%.4f", cpu[["elapsed"]]),
  sprintf("cpu_gibbs_loop=%.4f", sum((.bg_clock[[2]] - .bg_clock[[1]])[c("user.self", "sys.self")])),
  sprintf("elapsed_gibbs_loop=%.4f", (.bg_clock[[2]] - .bg_clock[[1]])[["elapsed"]]),
  sprintf("elapsed_init=%.4f", times[1]), sprintf("elapsed_gibbs=%.4f", times[2]),
  sprintf("elapsed_mode=%.4f", times[3]),
  sprintf("bgsmtr_version=%s", as.character(packageVersion("bgsmtr"))),
  sprintf("r_version=%s", R.version.string),
  sprintf("blas=%s", if (is.null(extSoftVersion()["BLAS"])) "" else extSoftVersion()[["BLAS"]]),
  paste0("snp_names=", paste(colnames(X), collapse = ",")),
  paste0("phenotype_names=", paste(colnames(Y), collapse = ",")))
writeLines(meta, file.path(out_dir, "meta.txt"))
