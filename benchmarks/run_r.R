#!/usr/bin/env Rscript
# Reference fits in R: lme4::lmer / lme4::glmer, glmmTMB (negative binomial),
# ordinal::clmm.  Reads the prepared data and tasks.json written by
#   python suite.py prepare --cache DIR
# and writes one JSON file:
#   {"meta": {...}, "results": {"R": {task: {status, seconds, times, logLik, fixef, ...}}}}
#
# Usage:
#   Rscript run_r.R --cache DIR --out results_r.json [--tasks a,b] \
#       [--target-seconds 60] [--max-repeats 11] [--time-limit 600]
#
# Timing: the fit call only (data already loaded and converted).  Fits repeat
# while one more (at the median so far) stays within --target-seconds in all,
# up to --max-repeats; `seconds` is the median of the N fits, so a fit slower
# than half the target runs once.  A fit longer than --time-limit is stopped and
# recorded as "timeout".  Each engine package is optional: a task whose package
# (lme4, ordinal or glmmTMB) is not installed is recorded as "not installed".
# jsonlite is required (it writes the result file).

suppressPackageStartupMessages({
  library(jsonlite)
})
invisible(Sys.setlocale("LC_COLLATE", "C"))  # factor levels sorted bytewise, as in Python

args <- commandArgs(trailingOnly = TRUE)
opt <- list(cache = NULL, out = NULL, tasks = "", `target-seconds` = "60",
            `max-repeats` = "11", `time-limit` = "600")
i <- 1
while (i <= length(args)) {
  key <- sub("^--", "", args[[i]])
  if (!key %in% names(opt)) stop("unknown option: ", args[[i]])
  opt[[key]] <- args[[i + 1]]
  i <- i + 2
}
if (is.null(opt$cache) || is.null(opt$out)) stop("usage: Rscript run_r.R --cache DIR --out FILE")
target <- as.numeric(opt$`target-seconds`)
max_rep <- as.integer(opt$`max-repeats`)
time_limit <- as.numeric(opt$`time-limit`)

engines <- c("lme4", "ordinal", "glmmTMB")
t_lib <- proc.time()[["elapsed"]]
have <- vapply(engines, function(p) suppressPackageStartupMessages(
  requireNamespace(p, quietly = TRUE)), logical(1))
lib_s <- proc.time()[["elapsed"]] - t_lib
pkg_version <- function(p) if (have[[p]]) as.character(packageVersion(p)) else NULL

manifest <- fromJSON(file.path(opt$cache, "tasks.json"), simplifyVector = FALSE)
tasks <- manifest$tasks
wanted <- if (nzchar(opt$tasks)) strsplit(opt$tasks, ",")[[1]] else vapply(tasks, function(t) t$name, "")
tasks <- Filter(function(t) t$name %in% wanted, tasks)

read_task <- function(t) {
  path <- file.path(opt$cache, paste0(t$name, ".csv"))
  factors <- unlist(t$factors)
  if (requireNamespace("data.table", quietly = TRUE)) {
    cc <- setNames(rep("character", length(factors)), factors)
    d <- as.data.frame(data.table::fread(path, colClasses = cc, showProgress = FALSE))
  } else {
    cc <- setNames(rep("character", length(factors)), factors)
    d <- read.csv(path, colClasses = cc)
  }
  for (f in factors) d[[f]] <- factor(d[[f]])
  if (isTRUE(t$ordinal)) {
    lev <- sort(unique(d[[t$response]]))
    d[[t$response]] <- factor(d[[t$response]], levels = lev, ordered = TRUE)
  }
  d
}

engine_of <- function(t) {
  if (identical(t$kind, "clmm")) return("ordinal::clmm")
  if (identical(t$family, "nbinom2")) return("glmmTMB::glmmTMB")
  if (identical(t$kind, "lmm")) return("lme4::lmer")
  "lme4::glmer"
}

extract <- function(m, t) {
  out <- list(logLik = as.numeric(logLik(m)))
  if (inherits(m, "merMod")) {
    out$fixef <- as.list(lme4::fixef(m))
    vc <- as.data.frame(lme4::VarCorr(m))
    out$varcomp <- lapply(seq_len(nrow(vc)), function(k) list(
      group = vc$grp[k], var1 = vc$var1[k], var2 = vc$var2[k], vcov = vc$vcov[k]))
    msgs <- m@optinfo$conv$lme4$messages
    out$converged <- is.null(msgs)
    if (!is.null(msgs)) out$messages <- as.list(msgs)
  } else if (inherits(m, "glmmTMB")) {
    out$fixef <- as.list(glmmTMB::fixef(m)$cond)
    out$nb_theta <- sigma(m)
    vc <- glmmTMB::VarCorr(m)$cond
    out$varcomp <- lapply(names(vc), function(g) list(group = g, vcov = as.numeric(vc[[g]][1, 1])))
    out$converged <- isTRUE(m$fit$convergence == 0) && isTRUE(m$sdr$pdHess)
  } else if (inherits(m, "clmm")) {
    out$fixef <- as.list(m$beta)
    out$thresholds <- as.list(m$alpha)
    vc <- ordinal::VarCorr(m)
    out$varcomp <- lapply(names(vc), function(g) list(group = g, vcov = as.numeric(vc[[g]][1, 1])))
    out$converged <- isTRUE(m$optRes$convergence == 0)
  }
  out
}

fit_once <- function(t, d) {
  warns <- character(0)
  expr <- parse(text = t$r_call)[[1]]
  setTimeLimit(elapsed = time_limit, transient = TRUE)
  on.exit(setTimeLimit(elapsed = Inf), add = TRUE)
  t0 <- Sys.time()
  m <- withCallingHandlers(
    eval(expr, envir = list(d = d), enclos = globalenv()),
    warning = function(w) {
      warns <<- c(warns, conditionMessage(w))
      invokeRestart("muffleWarning")
    })
  el <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  setTimeLimit(elapsed = Inf)
  list(model = m, seconds = el, warnings = unique(warns))
}

results <- list()
write_out <- function() {
  meta <- list(
    runner = "run_r.R",
    date = format(Sys.time(), "%Y-%m-%dT%H:%M:%S%z"),
    R = R.version.string,
    packages = list(lme4 = pkg_version("lme4"), ordinal = pkg_version("ordinal"),
                    glmmTMB = pkg_version("glmmTMB"),
                    Matrix = if (requireNamespace("Matrix", quietly = TRUE))
                      as.character(packageVersion("Matrix")) else NULL),
    blas = tryCatch(extSoftVersion()[["BLAS"]], error = function(e) ""),
    cores = parallel::detectCores(),
    library_load_s = lib_s,
    target_seconds = target, max_repeats = max_rep, time_limit_s = time_limit)
  write_json(list(meta = meta, results = list(R = results)), opt$out,
             auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null")
}

for (t in tasks) {
  cat(sprintf("[R] %-18s ", t$name)); flush.console()
  pkg <- sub("::.*$", "", engine_of(t))
  if (!have[[pkg]]) {
    results[[t$name]] <- list(status = "not installed", engine = engine_of(t),
                              reason = paste0("R package ", pkg, " is not installed"))
    cat("not installed (", pkg, ")\n", sep = "")
    write_out()
    next
  }
  t_load <- proc.time()[["elapsed"]]
  d <- read_task(t)
  load_s <- proc.time()[["elapsed"]] - t_load
  rec <- list(engine = engine_of(t), call = t$r_call, load_s = load_s)
  first <- tryCatch(fit_once(t, d), error = function(e) e)
  if (inherits(first, "error")) {
    msg <- conditionMessage(first)
    if (grepl("time limit|elapsed time", msg)) {
      rec$status <- "timeout"; rec$seconds <- NULL; rec$limit_s <- time_limit
    } else {
      rec$status <- "error"; rec$error <- msg
    }
    cat(rec$status, "\n")
  } else {
    times <- first$seconds
    # repeat while one more fit (at the median so far) stays within the target
    while (length(times) < max_rep && sum(times) + median(times) <= target)
      times <- c(times, fit_once(t, d)$seconds)
    rec <- c(rec, list(status = "ok", seconds = median(times), times = as.list(times),
                       n = length(times)), extract(first$model, t))
    if (length(first$warnings)) rec$warnings <- as.list(first$warnings)
    cat(sprintf("%9.3f s (n=%d)  logLik %.4f\n", median(times), length(times), rec$logLik))
  }
  results[[t$name]] <- rec
  write_out()
  rm(d); invisible(gc())
}
write_out()
