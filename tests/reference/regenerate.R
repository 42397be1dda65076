# Regenerate the R reference fixtures of this folder from the R calls they record.
#
#   Rscript tests/reference/regenerate.R                 # every case *.json beside this script
#   Rscript tests/reference/regenerate.R wine_logit soup # only these
#
# Each fixture names its data set (`data`, read from mixframe/datasets/data; its `data_prep` code is already
# applied there) and the exact call (`call`). This script reads those, evaluates the call again and rewrites the
# quantities the suite compares (tests/reference/reference_check.py): estimates, standard errors, variance components,
# log-likelihood, conditional modes and SDs, predictions of the first rows, Satterthwaite df (LMMs, with lmerTest)
# and the exact marginal log-likelihood of adaptive-quadrature fits. Every other field is kept as it is.
# Needs: lme4, ordinal, glmmTMB, jsonlite; lmerTest for the Satterthwaite df (skipped without it).

suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
  library(ordinal)
  library(glmmTMB)
})

args <- commandArgs(trailingOnly = FALSE)
script <- normalizePath(sub("^--file=", "", args[grep("^--file=", args)]))
here <- dirname(script)
data_dir <- file.path(here, "..", "..", "mixframe", "datasets", "data")
wanted <- commandArgs(trailingOnly = TRUE)
files <- sort(list.files(here, pattern = "\\.json$", full.names = TRUE))
if (length(wanted)) files <- files[sub("\\.json$", "", basename(files)) %in% wanted]

read_case_data <- function(case) {
  d <- read.csv(file.path(data_dir, case$data), stringsAsFactors = FALSE)
  for (col in names(case$factor_levels)) {
    if (col %in% names(d)) {
      ordered <- case$package == "ordinal" && col == all.vars(as.formula(case$formula))[1]
      d[[col]] <- factor(as.character(d[[col]]), levels = as.character(unlist(case$factor_levels[[col]])),
                         ordered = ordered)
    }
  }
  # grouping columns are factors of their labels
  bars <- findbars(as.formula(case$formula))
  for (b in bars) for (g in all.vars(b[[3]])) if (g %in% names(d)) d[[g]] <- factor(as.character(d[[g]]))
  d
}

named <- function(x) as.list(setNames(as.numeric(x), names(x)))

varcorr_rows <- function(df) {
  lapply(seq_len(nrow(df)), function(i) {
    r <- df[i, ]
    is_cov <- !is.na(r$var2)
    list(group = as.character(r$grp), term1 = if (is.na(r$var1)) NULL else as.character(r$var1),
         term2 = if (is_cov) as.character(r$var2) else NULL, variance = r$vcov,
         sd = if (is_cov) NULL else r$sdcor, corr = if (is_cov) r$sdcor else NULL)
  })
}

# The rows of as.data.frame(VarCorr(.)) from a list of covariance matrices (variances, then covariances).
varcorr_from_matrices <- function(mats) {
  rows <- list()
  for (g in names(mats)) {
    S <- as.matrix(mats[[g]])
    terms <- colnames(S)
    for (i in seq_along(terms)) {
      rows[[length(rows) + 1]] <- list(group = g, term1 = terms[i], term2 = NULL, variance = S[i, i],
                                       sd = sqrt(S[i, i]), corr = NULL)
    }
    for (i in seq_along(terms)) for (j in seq_along(terms)) if (i < j) {
      rows[[length(rows) + 1]] <- list(group = g, term1 = terms[i], term2 = terms[j], variance = S[i, j],
                                       sd = NULL, corr = S[i, j] / sqrt(S[i, i] * S[j, j]))
    }
  }
  rows
}

ranef_rows <- function(re, condsd) {
  out <- list()
  for (g in names(re)) {
    m <- re[[g]]
    rows <- list()
    for (t in seq_along(m)) for (i in seq_len(nrow(m))) {
      rows[[length(rows) + 1]] <- list(level = rownames(m)[i], term = names(m)[t], estimate = m[i, t],
                                       condsd = condsd[[g]][i, t])
    }
    out[[g]] <- rows
  }
  out
}

# Conditional modes and SDs from as.data.frame(ranef(m, condVar = TRUE)): one list of rows per grouping factor.
ranef_from_frame <- function(df) {
  out <- list()
  for (g in unique(as.character(df$grpvar))) {
    sub <- df[df$grpvar == g, , drop = FALSE]
    out[[g]] <- lapply(seq_len(nrow(sub)), function(i)
      list(level = as.character(sub$grp[i]), term = as.character(sub$term[i]), estimate = sub$condval[i],
           condsd = sub$condsd[i]))
  }
  out
}

# Exact marginal log-likelihood of a binomial/Poisson GLMM with one scalar random intercept, at its estimates.
integrated_loglik <- function(m) {
  fam <- family(m)
  y <- model.response(model.frame(m))
  g <- getME(m, "flist")[[1]]
  sd_b <- getME(m, "theta")[[1]]
  eta0 <- predict(m, re.form = NA, type = "link")
  wts <- weights(m)
  total <- 0
  for (lv in levels(g)) {
    i <- which(g == lv)
    f <- function(b) sapply(b, function(bb) {
      mu <- fam$linkinv(eta0[i] + bb)
      ll <- if (fam$family == "binomial") {
        n <- wts[i]
        yy <- if (is.matrix(y)) y[i, 1] else round(y[i] * n)
        sum(dbinom(yy, n, mu, log = TRUE))
      } else sum(dpois(y[i], mu, log = TRUE))
      exp(ll) * dnorm(bb, 0, sd_b)
    })
    total <- total + log(integrate(f, -Inf, Inf, rel.tol = 1e-12)$value)
  }
  total
}

for (f in files) {
  case <- fromJSON(f, simplifyVector = FALSE)
  d <- read_case_data(case)
  env <- new.env()
  assign(sub("\\.csv$", "", case$data), d, envir = env)
  for (nm in c("sleepstudy", "Dyestuff", "Penicillin", "Pastes", "InstEval", "cbpp", "VerbAgg", "grouseticks",
               "Salamanders", "wine", "soup", "gamma_sim")) assign(nm, d, envir = env)
  elapsed <- system.time(m <- eval(parse(text = case$call), envir = env))[["elapsed"]]
  case$timing_s <- elapsed
  case$nobs <- nobs(m)
  case$logLik <- as.numeric(logLik(m))
  case$df <- attr(logLik(m), "df")
  case$AIC <- AIC(m)
  case$BIC <- BIC(m)
  if (inherits(m, "merMod")) {
    case$fixef <- named(fixef(m))
    case$fixef_se <- named(sqrt(diag(as.matrix(vcov(m)))))
    case$vcov <- unname(lapply(seq_len(nrow(vcov(m))), function(i) as.numeric(as.matrix(vcov(m))[i, ])))
    case$varcorr <- varcorr_rows(as.data.frame(VarCorr(m)))
    case$sigma <- if (family(m)$family %in% c("gaussian", "Gamma")) sigma(m) else NULL
    case$ngroups <- as.list(ngrps(m))
    case$ranef <- ranef_from_frame(as.data.frame(ranef(m, condVar = TRUE)))
    rows <- 1:10
    case$predictions <- list(rows = rows,
                             fixed_link = as.numeric(predict(m, re.form = NA, type = "link"))[rows],
                             conditional_link = as.numeric(predict(m, type = "link"))[rows],
                             fixed_response = as.numeric(predict(m, re.form = NA, type = "response"))[rows],
                             conditional_response = as.numeric(predict(m, type = "response"))[rows])
    case$singular <- isSingular(m)
    if (startsWith(case$method, "AGQ")) case$logLik_integrated <- integrated_loglik(m)
    if (isLMM(m) && requireNamespace("lmerTest", quietly = TRUE)) {
      st <- summary(lmerTest::as_lmerModLmerTest(m), ddf = "Satterthwaite")$coefficients
      case$satterthwaite <- setNames(lapply(rownames(st), function(t)
        list(estimate = st[t, "Estimate"], se = st[t, "Std. Error"], df = st[t, "df"],
             t = st[t, "t value"], p = st[t, "Pr(>|t|)"])), rownames(st))
    }
  } else if (inherits(m, "glmmTMB")) {
    fe <- fixef(m)$cond
    case$fixef <- named(fe)
    v <- vcov(m)$cond
    case$fixef_se <- named(sqrt(diag(v)))
    case$vcov <- unname(lapply(seq_len(nrow(v)), function(i) as.numeric(v[i, ])))
    case$varcorr <- varcorr_from_matrices(VarCorr(m)$cond)
    case$sigma <- if (family(m)$family %in% c("nbinom2", "poisson", "binomial")) NULL else sigma(m)
    if (startsWith(family(m)$family, "nbinom")) case$nb_size <- sigma(m)
    re <- ranef(m, condVar = TRUE)$cond
    condsd <- lapply(re, function(x) {
      pv <- attr(x, "condVar")
      s <- t(sapply(seq_len(dim(pv)[3]), function(i) sqrt(diag(matrix(pv[, , i], dim(pv)[1])))))
      if (dim(pv)[1] == 1) s <- matrix(s, ncol = 1)
      s
    })
    case$ranef <- ranef_rows(re, condsd)
    rows <- 1:10
    case$predictions <- list(rows = rows,
                             fixed_link = as.numeric(predict(m, re.form = NA, type = "link"))[rows],
                             conditional_link = as.numeric(predict(m, type = "link"))[rows])
  } else {  # ordinal clm / clmm
    case$thresholds <- named(m$alpha)
    case$fixef <- named(m$beta)
    se <- sqrt(diag(vcov(m)))
    case$thresholds_se <- named(se[names(m$alpha)])
    case$fixef_se <- named(se[names(m$beta)])
    if (inherits(m, "clmm")) {
      case$varcorr <- lapply(names(m$ST), function(g) list(group = g, term1 = "(Intercept)", term2 = NULL,
                                                             variance = m$ST[[g]][1, 1]^2, sd = m$ST[[g]][1, 1],
                                                             corr = NULL))
      re <- ranef(m, condVar = TRUE)
      cv <- condVar(m)
      case$ranef <- setNames(lapply(names(re), function(g) lapply(seq_len(nrow(re[[g]])), function(i)
        list(level = rownames(re[[g]])[i], term = "(Intercept)", estimate = re[[g]][i, 1],
             condsd = sqrt(cv[[g]][i, 1])))), names(re))
    }
    rows <- 1:5
    nd <- d[rows, , drop = FALSE]
    resp <- all.vars(as.formula(case$formula))[1]
    fixed_formula <- nobars(as.formula(case$formula))
    # P(Y <= j) = F(threshold_j - x'beta), random effects at zero
    cdf <- switch(as.character(m$link), logit = plogis, probit = pnorm, cloglog = function(x) 1 - exp(-exp(x)),
                  loglog = function(x) exp(-exp(-x)), cauchit = pcauchy)
    X <- model.matrix(delete.response(terms(fixed_formula)), nd)
    X <- X[, colnames(X) != "(Intercept)", drop = FALSE]
    eta <- as.numeric(X[, names(m$beta), drop = FALSE] %*% m$beta)
    cum <- cbind(0, cdf(outer(-eta, m$alpha, "+")), 1)
    p <- t(apply(cum, 1, diff))
    case$predictions <- list(rows = rows, categories = levels(d[[resp]]),
                             observed = as.character(nd[[resp]]),
                             fixed_prob = unname(lapply(seq_len(nrow(p)), function(i) as.numeric(p[i, ]))))
  }
  writeLines(toJSON(case, auto_unbox = TRUE, digits = 15, pretty = TRUE, null = "null"), f)
  cat(sprintf("%-22s %8.3fs  logLik %.10g\n", case$case, elapsed, case$logLik))
}
