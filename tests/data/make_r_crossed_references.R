# Reference fits for crossed and nested random effects (lme4 / glmmTMB), written to
# tests/data/r_crossed_references.json, and the two R data sets used, exported to
# benchmarks/data/{salamanders,grouseticks}.csv.
#
# Usage, from the repository root (about half a minute):
#   Rscript tests/data/make_r_crossed_references.R [OUT_JSON] [CSV_DIR]
#
# Cases
#   salamanders   glmmTMB::Salamanders, Poisson, (1|site) + (1|obs) with obs = the row (1..644)
#   grouseticks   lme4::grouseticks, Poisson, (1|BROOD) + (1|INDEX) + (1|LOCATION), HEIGHT
#                 centred and scaled (HEIGHT_s); grouseticks_raw_height keeps the lme4 help
#                 page's raw HEIGHT (lme4 warns there)
#   crossed_lmm   simulated 30 x 20 crossed intercepts, 3 obs per cell, lmer(REML = FALSE)
#   nested_lmm    simulated 40 schools x 4 classes x 6 pupils, lmer(y ~ x + (1|school/class))
#   partial_glmm  simulated 60 x 40 partially crossed (each cell observed with prob. 0.25),
#                 3 Bernoulli obs per observed cell, glmer(nAGQ = 1) and glmmTMB
# The simulated data are stored in the JSON (0-based integer levels); x and y are rounded to
# 8 decimals before fitting so that the JSON numbers (15 significant digits) are the data.
#
# Per fit: the call, log-likelihood, fixed effects and standard errors by name,
# random-effect SDs (and the residual sigma of an LMM), conditional modes with conditional
# SDs, warnings and convergence messages. See "definitions" in the JSON for what each SD is.
suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
out_json <- if (length(args) >= 1) args[1] else file.path("tests", "data", "r_crossed_references.json")
csv_dir <- if (length(args) >= 2) args[2] else file.path("benchmarks", "data")

ver <- function(p) as.character(packageVersion(p))
versions <- list(
  R = R.version.string, lme4 = ver("lme4"), glmmTMB = ver("glmmTMB"), TMB = ver("TMB"),
  Matrix = ver("Matrix"), jsonlite = ver("jsonlite"), RNGkind = I(RNGkind())
)

# -------------------------------------------------------------------------------- helpers
# Evaluate a fit, recording its warnings and messages (muffled) and its elapsed seconds.
capture <- function(expr) {
  warns <- character(0)
  msgs <- character(0)
  t0 <- proc.time()[["elapsed"]]
  value <- withCallingHandlers(expr,
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    },
    message = function(m) {
      msgs <<- c(msgs, conditionMessage(m))
      invokeRestart("muffleMessage")
    }
  )
  list(value = value, warnings = warns, messages = msgs, seconds = proc.time()[["elapsed"]] - t0)
}

call_string <- function(m) paste(trimws(deparse(getCall(m), width.cutoff = 500L)), collapse = " ")
named <- function(x) as.list(x) # named numeric vector -> JSON object

# Conditional modes: level names in the model's order, or reordered to 0-based integer ids.
# `key` maps a level name to its 0-based id (NULL: keep the names).
re_entry <- function(levels, mode, var, key = NULL, extra = list()) {
  out <- c(list(levels = I(levels), mode = I(unname(mode)), condsd = I(unname(sqrt(var)))), extra)
  if (!is.null(key)) {
    id <- key(levels)
    o <- order(id)
    stopifnot(identical(as.numeric(id[o]), as.numeric(seq_along(o) - 1)))
    out <- lapply(out, function(v) I(unclass(v)[o]))
    out$levels <- NULL
    out <- c(list(id = I(seq_along(o) - 1L)), out)
  }
  out
}

lme4_summary <- function(cap, keys = list()) {
  m <- cap$value
  ll <- logLik(m)
  vc <- as.data.frame(VarCorr(m))
  re <- vc$grp != "Residual"
  out <- list(
    call = call_string(m), package = "lme4", version = ver("lme4"),
    loglik = as.numeric(ll), df = attr(ll, "df"), nobs = nobs(m),
    fixef = named(fixef(m)),
    se = named(sqrt(diag(as.matrix(vcov(m))))),
    re_sd = setNames(as.list(vc$sdcor[re]), vc$grp[re]),
    theta = named(getME(m, "theta")),
    optimizer = I(as.character(m@optinfo$optimizer)),
    conv_code = I(as.integer(m@optinfo$conv$lme4$code)),
    conv_messages = I(as.character(unlist(m@optinfo$conv$lme4$messages))),
    warnings = I(cap$warnings), messages = I(cap$messages), seconds = cap$seconds
  )
  if (isLMM(m)) out$sigma <- sigma(m)
  if (isGLMM(m)) {
    out$se_method <- "vcov(m): finite-difference Hessian of the Laplace deviance in (theta, beta) (use.hessian = TRUE)"
    out$se_rx <- named(sqrt(diag(as.matrix(suppressWarnings(vcov(m, use.hessian = FALSE))))))
  } else {
    out$se_method <- "vcov(m): sigma^2 (X' V^-1 X)^-1 at the estimate, conditional on theta"
  }
  rr <- ranef(m, condVar = TRUE)
  out$ranef <- sapply(names(rr), function(g) {
    re_entry(rownames(rr[[g]]), rr[[g]][, 1], attr(rr[[g]], "postVar")[1, 1, ], keys[[g]])
  }, simplify = FALSE)
  out
}

tmb_summary <- function(cap, keys = list()) {
  m <- cap$value
  ll <- logLik(m)
  vc <- VarCorr(m)$cond
  out <- list(
    call = call_string(m), package = "glmmTMB", version = ver("glmmTMB"),
    loglik = as.numeric(ll), df = attr(ll, "df"), nobs = nobs(m),
    fixef = named(fixef(m)$cond),
    se = named(sqrt(diag(vcov(m)$cond))),
    se_method = "sdreport: inverse Hessian of the Laplace negative log-likelihood in all fixed parameters",
    re_sd = lapply(vc, function(v) unname(attr(v, "stddev")[1])),
    pdHess = m$sdr$pdHess, opt_convergence = m$fit$convergence, opt_message = m$fit$message,
    warnings = I(cap$warnings), messages = I(cap$messages), seconds = cap$seconds
  )
  if (family(m)$family == "gaussian") out$sigma <- sigma(m)
  # glmmTMB's condVar (TMB's sdreport) adds the fixed-parameter uncertainty to the inverse
  # inner Hessian; condsd_inner is sqrt(diag(H^-1)) alone, H the inner Hessian at the mode.
  rr <- ranef(m, condVar = TRUE)$cond
  env <- m$obj$env
  par <- env$last.par.best
  b <- par[env$random]
  v_inner <- diag(solve(env$spHess(par, random = TRUE)))
  terms <- names(m$modelInfo$reTrms$cond$cnms)
  stopifnot(identical(sort(terms), sort(names(rr))))
  off <- 0
  ent <- list()
  for (g in terms) {
    n <- nrow(rr[[g]])
    idx <- off + seq_len(n)
    off <- off + n
    stopifnot(isTRUE(all.equal(unname(b[idx]), rr[[g]][, 1], tolerance = 1e-10)))
    v_full <- attr(rr[[g]], "condVar")[1, 1, ]
    stopifnot(all(v_inner[idx] <= v_full * (1 + 1e-8)))
    ent[[g]] <- re_entry(rownames(rr[[g]]), rr[[g]][, 1], v_full, keys[[g]],
      extra = list(condsd_inner = I(sqrt(v_inner[idx])))
    )
  }
  out$ranef <- ent
  out
}

# lme4's Laplace log-likelihood at given (theta, beta), with PIRLS run to tolPwrss = 1e-13
# (glmer's default 1e-7 leaves an error of order 1e-4 in its reported logLik).
glmer_exact_laplace <- function(m, theta, beta) {
  r <- tryCatch(
    {
      f <- suppressWarnings(update(m, devFunOnly = TRUE, control = glmerControl(tolPwrss = 1e-13)))
      -f(c(theta, beta)) / 2
    },
    error = function(e) NA_real_
  )
  r
}

# theta of a glmer fit from glmmTMB's SDs (scalar intercept terms: theta = SD)
theta_from_tmb <- function(m_lme4, m_tmb) {
  th <- getME(m_lme4, "theta")
  sds <- sapply(VarCorr(m_tmb)$cond, function(v) unname(attr(v, "stddev")[1]))
  setNames(sds[sub("\\.\\(Intercept\\)$", "", names(th))], names(th))
}

add_laplace_checks <- function(entry, m_lme4, m_tmb = NULL) {
  entry$loglik_laplace_tol13 <- glmer_exact_laplace(m_lme4, getME(m_lme4, "theta"), fixef(m_lme4))
  if (!is.null(m_tmb)) {
    entry$loglik_laplace_tol13_at_glmmTMB <- glmer_exact_laplace(m_lme4, theta_from_tmb(m_lme4, m_tmb), fixef(m_tmb)$cond)
  }
  entry
}

int_key <- function(levels) as.integer(levels)
levels_of <- function(d) lapply(Filter(is.factor, d), function(f) I(levels(f)))

write_csv17 <- function(d, path) {
  e <- d
  for (k in names(e)) {
    if (is.factor(e[[k]])) e[[k]] <- as.character(e[[k]])
    if (is.double(e[[k]])) { # shortest of 15 / 17 significant digits that reads back exactly
      s15 <- sprintf("%.15g", e[[k]])
      e[[k]] <- ifelse(as.numeric(s15) == e[[k]], s15, sprintf("%.17g", e[[k]]))
    }
  }
  stopifnot(!any(grepl(",", unlist(lapply(e, as.character)))))
  write.csv(e, path, row.names = FALSE, quote = FALSE)
}

cases <- list()

# -------------------------------------------------------------------------------- (a) Salamanders
data("Salamanders", package = "glmmTMB")
Salamanders$obs <- factor(seq_len(nrow(Salamanders)))
write_csv17(Salamanders, file.path(csv_dir, "salamanders.csv"))
f_sal <- count ~ spp + mined + (1 | site) + (1 | obs)
sal_tmb <- capture(glmmTMB(f_sal, data = Salamanders, family = poisson))
sal_lme4 <- capture(glmer(f_sal, data = Salamanders, family = poisson, nAGQ = 1))
cases$salamanders <- list(
  description = "Salamanders counts: Poisson GLMM with site and observation-level random intercepts",
  data = list(
    source = paste("glmmTMB::Salamanders, glmmTMB", ver("glmmTMB")), csv = "benchmarks/data/salamanders.csv",
    prep = "data(Salamanders, package = 'glmmTMB'); Salamanders$obs <- factor(seq_len(nrow(Salamanders)))",
    nobs = nrow(Salamanders), levels = levels_of(Salamanders[c("spp", "mined", "site")]),
    note = "site is an ordered factor in the package; as a grouping factor only its levels matter. obs levels are 1..644 (the row)."
  ),
  fits = list(
    glmmTMB = tmb_summary(sal_tmb),
    glmer = add_laplace_checks(lme4_summary(sal_lme4), sal_lme4$value, sal_tmb$value)
  )
)

# -------------------------------------------------------------------------------- (b) grouseticks
data("grouseticks", package = "lme4")
h_mean <- mean(grouseticks$HEIGHT)
h_sd <- sd(grouseticks$HEIGHT)
grouseticks$HEIGHT_s <- (grouseticks$HEIGHT - h_mean) / h_sd
write_csv17(grouseticks, file.path(csv_dir, "grouseticks.csv"))
f_gt <- TICKS ~ YEAR + HEIGHT_s + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)
gt_lme4 <- capture(glmer(f_gt, data = grouseticks, family = poisson, nAGQ = 1))
gt_tmb <- capture(glmmTMB(f_gt, data = grouseticks, family = poisson))
gt_data <- list(
  source = paste("lme4::grouseticks, lme4", ver("lme4")), csv = "benchmarks/data/grouseticks.csv",
  prep = "data(grouseticks, package = 'lme4'); grouseticks$HEIGHT_s <- (grouseticks$HEIGHT - mean(grouseticks$HEIGHT)) / sd(grouseticks$HEIGHT)",
  HEIGHT_mean = h_mean, HEIGHT_sd = h_sd, nobs = nrow(grouseticks),
  levels = levels_of(grouseticks[c("YEAR", "BROOD", "INDEX", "LOCATION")]),
  note = "YEAR is a factor (95, 96, 97); INDEX is the observation (chick) level"
)
cases$grouseticks <- list(
  description = "grouseticks: Poisson GLMM, brood, chick (observation-level) and location intercepts; HEIGHT centred and scaled (HEIGHT_s = (HEIGHT - mean) / sd, sd with n - 1)",
  data = gt_data,
  fits = list(
    glmer = add_laplace_checks(lme4_summary(gt_lme4), gt_lme4$value, gt_tmb$value),
    glmmTMB = tmb_summary(gt_tmb)
  )
)
f_gt_raw <- TICKS ~ YEAR + HEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)
gtr_lme4 <- capture(glmer(f_gt_raw, data = grouseticks, family = poisson, nAGQ = 1))
gtr_tmb <- capture(glmmTMB(f_gt_raw, data = grouseticks, family = poisson))
cases$grouseticks_raw_height <- list(
  description = "grouseticks as in the lme4 help page example (raw HEIGHT in metres); lme4 warns (large eigenvalue, gradient); no ranef stored",
  data = gt_data[c("source", "csv", "nobs")],
  fits = list(
    glmer = add_laplace_checks(lme4_summary(gtr_lme4), gtr_lme4$value, gtr_tmb$value),
    glmmTMB = tmb_summary(gtr_tmb)
  )
)
cases$grouseticks_raw_height$fits$glmer$ranef <- NULL
cases$grouseticks_raw_height$fits$glmmTMB$ranef <- NULL

# -------------------------------------------------------------------------------- (c) crossed LMM
set.seed(101)
na <- 30L
nb <- 20L
per <- 3L
a <- rep(0:(na - 1L), each = nb * per)
b <- rep(rep(0:(nb - 1L), each = per), na)
n <- length(a)
x <- round(rnorm(n), 8)
u <- rnorm(na, 0, 0.8)
v <- rnorm(nb, 0, 0.5)
y <- round(1 + 0.5 * x + u[a + 1L] + v[b + 1L] + rnorm(n), 8)
crossed <- data.frame(y = y, x = x, a = factor(a, levels = 0:(na - 1L)), b = factor(b, levels = 0:(nb - 1L)))
cr_lmer <- capture(lmer(y ~ x + (1 | a) + (1 | b), data = crossed, REML = FALSE))
cr_tmb <- capture(glmmTMB(y ~ x + (1 | a) + (1 | b), data = crossed, REML = FALSE))
cases$crossed_lmm <- list(
  description = "simulated crossed LMM: 30 x 20 crossed intercepts, 3 obs per cell (fully crossed)",
  simulation = "set.seed(101); a = rep(0:29, each = 60); b = rep(rep(0:19, each = 3), 30); x = round(rnorm(1800), 8); u = rnorm(30, 0, 0.8); v = rnorm(20, 0, 0.5); y = round(1 + 0.5 x + u[a] + v[b] + rnorm(1800), 8)",
  data = list(y = I(y), x = I(x), a = I(a), b = I(b)),
  true = list(intercept = 1, slope = 0.5, sd_a = 0.8, sd_b = 0.5, sigma = 1, u_a = I(u), v_b = I(v)),
  fits = list(
    lmer = lme4_summary(cr_lmer, list(a = int_key, b = int_key)),
    glmmTMB = tmb_summary(cr_tmb, list(a = int_key, b = int_key))
  )
)

# -------------------------------------------------------------------------------- (d) nested LMM
set.seed(202)
ns <- 40L
cps <- 4L
pc <- 6L
school <- rep(0:(ns - 1L), each = cps * pc)
class <- rep(0:(ns * cps - 1L), each = pc) # global class id; class c is in school c %/% 4
n <- length(school)
x <- round(rnorm(n), 8)
s_eff <- rnorm(ns, 0, 0.6)
c_eff <- rnorm(ns * cps, 0, 0.4)
y <- round(2 + 0.4 * x + s_eff[school + 1L] + c_eff[class + 1L] + rnorm(n), 8)
nested <- data.frame(
  y = y, x = x, school = factor(school, levels = 0:(ns - 1L)),
  class = factor(class, levels = 0:(ns * cps - 1L))
)
class_key <- function(levels) as.integer(sub(":.*$", "", levels)) # "class:school" names
nest_keys <- list(school = int_key, "class:school" = class_key)
ne_lmer <- capture(lmer(y ~ x + (1 | school / class), data = nested, REML = FALSE))
ne_tmb <- capture(glmmTMB(y ~ x + (1 | school / class), data = nested, REML = FALSE))
cases$nested_lmm <- list(
  description = "simulated nested LMM: 40 schools x 4 classes x 6 pupils, (1 | school/class) = (1 | school) + (1 | class:school); class ids are global, 0-based",
  simulation = "set.seed(202); school = rep(0:39, each = 24); class = rep(0:159, each = 6); x = round(rnorm(960), 8); s = rnorm(40, 0, 0.6); c = rnorm(160, 0, 0.4); y = round(2 + 0.4 x + s[school] + c[class] + rnorm(960), 8)",
  data = list(y = I(y), x = I(x), school = I(school), class = I(class)),
  true = list(intercept = 2, slope = 0.4, sd_school = 0.6, sd_class = 0.4, sigma = 1, school = I(s_eff), class = I(c_eff)),
  ranef_note = "ranef 'class:school' is ordered by the global 0-based class id (id), 'school' by school id",
  fits = list(
    lmer = lme4_summary(ne_lmer, nest_keys),
    glmmTMB = tmb_summary(ne_tmb, nest_keys)
  )
)

# -------------------------------------------------------------------------------- (e) partially crossed binomial GLMM
set.seed(303)
na <- 60L
nb <- 40L
per <- 3L
repeat {
  inc <- matrix(runif(na * nb) < 0.25, na, nb)
  if (all(rowSums(inc) > 0) && all(colSums(inc) > 0)) break
}
cells <- which(inc, arr.ind = TRUE)
cells <- cells[order(cells[, 1], cells[, 2]), , drop = FALSE]
a <- rep(cells[, 1] - 1L, each = per)
b <- rep(cells[, 2] - 1L, each = per)
n <- length(a)
x <- round(rnorm(n), 8)
u <- rnorm(na, 0, 0.8)
v <- rnorm(nb, 0, 0.6)
eta <- -0.5 + 0.8 * x + u[a + 1L] + v[b + 1L]
y <- rbinom(n, 1L, plogis(eta))
partial <- data.frame(y = y, x = x, a = factor(a, levels = 0:(na - 1L)), b = factor(b, levels = 0:(nb - 1L)))
pa_lme4 <- capture(glmer(y ~ x + (1 | a) + (1 | b), data = partial, family = binomial, nAGQ = 1))
pa_tmb <- capture(glmmTMB(y ~ x + (1 | a) + (1 | b), data = partial, family = binomial))
cases$partial_glmm <- list(
  description = sprintf("simulated partially crossed logistic GLMM: 60 x 40 levels, %d of 2400 cells observed (each with prob. 0.25), 3 Bernoulli obs per observed cell, %d rows", nrow(cells), n),
  simulation = "set.seed(303); repeat {inc = matrix(runif(2400) < 0.25, 60, 40); break when every row and column has a cell}; cells sorted by (a, b), 3 rows each; x = round(rnorm(n), 8); u = rnorm(60, 0, 0.8); v = rnorm(40, 0, 0.6); y = rbinom(n, 1, plogis(-0.5 + 0.8 x + u[a] + v[b]))",
  data = list(y = I(y), x = I(x), a = I(a), b = I(b)),
  true = list(intercept = -0.5, slope = 0.8, sd_a = 0.8, sd_b = 0.6, u_a = I(u), v_b = I(v)),
  fits = list(
    glmer = add_laplace_checks(lme4_summary(pa_lme4, list(a = int_key, b = int_key)), pa_lme4$value, pa_tmb$value),
    glmmTMB = tmb_summary(pa_tmb, list(a = int_key, b = int_key))
  )
)

# -------------------------------------------------------------------------------- write
ref <- list(
  generated_by = "tests/data/make_r_crossed_references.R", date = as.character(Sys.Date()),
  versions = versions,
  definitions = list(
    loglik = "logLik(fit): marginal log-likelihood (ML, REML = FALSE); Laplace for GLMMs (nAGQ = 1); all constants included (log y! for Poisson)",
    loglik_laplace_tol13 = "lme4's Laplace log-likelihood re-evaluated at the glmer estimate with PIRLS to tolPwrss = 1e-13 (glmer's default tolPwrss = 1e-7 leaves an error of order 1e-4 in logLik)",
    loglik_laplace_tol13_at_glmmTMB = "the same at glmmTMB's estimate: agrees with glmmTMB's logLik, i.e. both packages compute the same Laplace approximation",
    se = "standard errors of the fixed effects; see se_method per fit. glmer: se_rx is the RX-based (conditional on theta) alternative",
    re_sd = "random-effect standard deviations by grouping factor",
    sigma = "residual SD of an LMM (ML estimate)",
    ranef = "conditional modes of the random effects (original scale): levels in the model's order, or id = 0-based integer level for the simulated cases",
    condsd_lme4 = "lme4 ranef(condVar = TRUE): sqrt of postVar = sqrt(diag(H^-1)), H the inner (random-effect) Hessian at the mode, conditional on the estimated theta and beta",
    condsd_glmmTMB = "glmmTMB ranef(condVar = TRUE) (TMB sdreport diag.cov.random): diag(H^-1) PLUS the propagated uncertainty of the fixed parameters (generalized delta method), so it is larger than lme4's",
    condsd_inner = "glmmTMB only: sqrt(diag(H^-1)) alone from obj$env$spHess at the optimum, lme4's definition"
  ),
  cases = cases
)
writeLines(toJSON(ref, auto_unbox = TRUE, digits = NA, pretty = TRUE), out_json)

# the stored simulated data are exactly the data fitted
back <- fromJSON(out_json, simplifyVector = TRUE)
stopifnot(identical(back$cases$crossed_lmm$data$y, crossed$y), identical(back$cases$crossed_lmm$data$x, crossed$x))
stopifnot(identical(back$cases$nested_lmm$data$y, nested$y), identical(back$cases$partial_glmm$data$x, partial$x))
cat("wrote", out_json, "\n")
for (cn in names(cases)) {
  for (fn in names(cases[[cn]]$fits)) {
    f <- cases[[cn]]$fits[[fn]]
    cat(sprintf("%-24s %-8s logLik %.10f  warnings %d  %s\n", cn, fn, f$loglik, length(f$warnings), paste(sprintf("%s=%.6f", names(f$fixef), unlist(f$fixef)), collapse = " ")))
  }
}
