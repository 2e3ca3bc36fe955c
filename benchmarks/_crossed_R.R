# One crossed / nested random-effects case with one R tool in a fresh R process, for
# benchmarks/bench_crossed.py: the first fit (after loading the package and reading the data),
# then REPEATS refits in the same R session (warm: their median), the log-likelihood and the
# estimates, and the process's peak resident memory (VmHWM from /proc/self/status at the
# end: the high-water mark of the resident set, what getrusage's ru_maxrss reports).
# Prints one JSON line.
# Usage: Rscript benchmarks/_crossed_R.R TOOL CASE CSV REPEATS     (TOOL: lme4 | glmmTMB)
suppressPackageStartupMessages(library(jsonlite))
args <- commandArgs(trailingOnly = TRUE)
tool <- args[1]
case <- args[2]
csv <- args[3]
repeats <- as.integer(args[4])
suppressPackageStartupMessages(library(tool, character.only = TRUE))

d <- read.csv(csv)
SPP <- c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF") # glmmTMB::Salamanders' level order
spec <- switch(case,
  insteval = list(form = y ~ x + (1 | s) + (1 | d), family = "gaussian", factors = c("s", "d")),
  nested = list(form = y ~ x + (1 | school / class), family = "gaussian", factors = c("school", "class")),
  logit = list(form = y ~ x + (1 | a) + (1 | b), family = "binomial", factors = c("a", "b")),
  salamanders = list(form = count ~ spp + mined + (1 | site) + (1 | obs), family = "poisson", factors = c("site", "obs")),
  stop("unknown case ", case)
)
for (k in spec$factors) d[[k]] <- factor(d[[k]])
if (case == "salamanders") {
  d$spp <- factor(d$spp, levels = SPP)
  d$mined <- factor(d$mined, levels = c("yes", "no"))
}
fam <- spec$family
fit <- function() {
  if (tool == "lme4") {
    if (fam == "gaussian") lmer(spec$form, data = d, REML = FALSE) else glmer(spec$form, data = d, family = fam, nAGQ = 1)
  } else {
    glmmTMB(spec$form, data = d, family = fam, REML = FALSE)
  }
}
warns <- character(0)
t0 <- proc.time()[["elapsed"]]
m <- withCallingHandlers(fit(), warning = function(w) {
  warns <<- c(warns, conditionMessage(w))
  invokeRestart("muffleWarning")
})
first <- proc.time()[["elapsed"]] - t0
times <- numeric(0)
for (i in seq_len(repeats)) {
  t0 <- proc.time()[["elapsed"]]
  m <- suppressWarnings(fit())
  times <- c(times, proc.time()[["elapsed"]] - t0)
}
if (tool == "lme4") {
  fe <- fixef(m)
  vc <- as.data.frame(VarCorr(m))
  sds <- setNames(as.list(vc$sdcor), vc$grp)
} else {
  fe <- fixef(m)$cond
  sds <- lapply(VarCorr(m)$cond, function(v) unname(attr(v, "stddev")[1]))
  if (fam == "gaussian") sds$Residual <- sigma(m)
}
hwm <- grep("^VmHWM", readLines("/proc/self/status"), value = TRUE)
cat(toJSON(list(
  tool = tool, case = case, version = as.character(packageVersion(tool)), R = as.character(getRversion()),
  blas = as.character(extSoftVersion()[["BLAS"]]), nobs = nrow(d),
  first = first, warm = if (length(times)) median(times) else NA, repeats = repeats,
  loglik = as.numeric(logLik(m)), fixef = as.list(fe), sd = sds, warnings = I(warns),
  rss_mb = as.numeric(gsub("[^0-9]", "", hwm)) / 1024, rss_source = "VmHWM (/proc/self/status)"
), auto_unbox = TRUE, digits = NA), "\n")
