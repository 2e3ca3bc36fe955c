# One latency case with one R tool in a fresh process: first call and warm call (seconds).
# Usage: Rscript benchmarks/_latency.R TOOL CASE DATA_DIR     (TOOL: stats | lme4 | glmmTMB)
suppressPackageStartupMessages({
  library(jsonlite)
})
args <- commandArgs(trailingOnly = TRUE)
tool <- args[1]; case <- args[2]; dir <- args[3]
rd <- function(name) read.csv(file.path(dir, paste0(name, ".csv")))
if (tool == "lme4") suppressPackageStartupMessages(library(lme4))
if (tool == "glmmTMB") suppressPackageStartupMessages(library(glmmTMB))

fit <- switch(case,
  glm = { d <- rd("glm"); X <- as.matrix(d[, grep("^X", names(d))])
          function() glm.fit(X, d$y, family = binomial()) },
  glmm = { d <- rd("glmm"); d$g <- factor(d$g)
           if (tool == "lme4") function() glmer(y ~ x + (1 | g), d, family = binomial)
           else function() glmmTMB(y ~ x + (1 | g), d, family = binomial) },
  slope = { d <- rd("slope"); d$g <- factor(d$g)
            if (tool == "lme4") function() lmer(y ~ x + (x | g), d, REML = FALSE)
            else function() glmmTMB(y ~ x + (x | g), d, REML = FALSE) },
  sleep = { d <- read.csv(file.path(dir, "sleepstudy.csv")); d$Subject <- factor(d$Subject)
            if (tool == "lme4") function() lmer(Reaction ~ Days + (Days | Subject), d, REML = FALSE)
            else function() glmmTMB(Reaction ~ Days + (Days | Subject), d, REML = FALSE) },
  cbpp = { d <- read.csv(file.path(dir, "cbpp.csv")); d$herd <- factor(d$herd); d$period <- factor(d$period)
           if (tool == "lme4") function() glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, family = binomial)
           else function() glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), d, family = binomial) },
  agq25 = { d <- read.csv(file.path(dir, "cbpp.csv")); d$herd <- factor(d$herd); d$period <- factor(d$period)
            function() glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), d, family = binomial, nAGQ = 25) },
  stop("unknown case")
)
t0 <- proc.time()[["elapsed"]]; r <- fit(); first <- proc.time()[["elapsed"]] - t0
warm <- Inf
for (i in 1:3) { t0 <- proc.time()[["elapsed"]]; r <- fit(); warm <- min(warm, proc.time()[["elapsed"]] - t0) }
ll <- if (case == "glm") NA else as.numeric(logLik(r))
ver <- if (tool == "stats") as.character(getRversion()) else as.character(packageVersion(tool))
cat(toJSON(list(tool = tool, case = case, first = first, warm = warm, loglik = ll, version = ver,
                R = as.character(getRversion())), auto_unbox = TRUE, digits = NA), "\n")
