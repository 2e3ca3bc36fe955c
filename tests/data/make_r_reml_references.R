# REML and Satterthwaite references for tests/test_reml.py (run from the project root):
#   Rscript tests/data/make_r_reml_references.R
# Writes tests/data/r_reml_references.json; tests never need R.
suppressPackageStartupMessages({library(lme4); library(glmmTMB); library(lmerTest); library(jsonlite)})
out <- list(versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                            glmmTMB = as.character(packageVersion("glmmTMB")),
                            lmerTest = as.character(packageVersion("lmerTest"))))
fix <- function(m) {
  s <- summary(m)$coefficients
  list(estimate = unname(s[, "Estimate"]), se = unname(s[, "Std. Error"]),
       df = if ("df" %in% colnames(s)) unname(s[, "df"]) else NULL,
       names = rownames(s))
}
# sleepstudy, correlated random intercept and slope per subject (lmer's default REML)
m <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = TRUE)
vc <- as.data.frame(VarCorr(m))
out$sleepstudy <- list(call = "lmer(Reaction ~ Days + (Days | Subject), sleepstudy, REML = TRUE)",
  loglik = as.numeric(logLik(m)), fixef = fix(m),
  sd_intercept = vc$sdcor[1], sd_slope = vc$sdcor[2], corr = vc$sdcor[3], sigma = sigma(m),
  vcov = unname(as.matrix(vcov(m))))
mml <- lmerTest::lmer(Reaction ~ Days + (Days | Subject), data = sleepstudy, REML = FALSE)
out$sleepstudy_ml <- list(call = "lmer(..., REML = FALSE)", loglik = as.numeric(logLik(mml)), fixef = fix(mml))
# Penicillin, crossed random intercepts (plate, sample)
m2 <- lmerTest::lmer(diameter ~ 1 + (1 | plate) + (1 | sample), data = Penicillin, REML = TRUE)
vc2 <- as.data.frame(VarCorr(m2))
out$penicillin <- list(call = "lmer(diameter ~ 1 + (1 | plate) + (1 | sample), Penicillin, REML = TRUE)",
  loglik = as.numeric(logLik(m2)), fixef = fix(m2),
  sd = setNames(as.list(vc2$sdcor), vc2$grp), sigma = sigma(m2))
# cbpp binomial GLMM, REML (Laplace) in glmmTMB
g <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), family = binomial,
             data = cbpp, REML = TRUE)
out$cbpp <- list(call = "glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), binomial, cbpp, REML = TRUE)",
  loglik = as.numeric(logLik(g)), fixef = unname(fixef(g)$cond),
  se = unname(sqrt(diag(vcov(g)$cond))), sd_herd = attr(VarCorr(g)$cond$herd, "stddev")[[1]])
write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/data/r_reml_references.json")
# the data, for the tests
write.csv(Penicillin, "tests/data/penicillin.csv", row.names = FALSE)
