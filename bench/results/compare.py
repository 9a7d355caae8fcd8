"""``bench compare``: one row per (model, dataset, profile, metric) with a verdict.

A row is ``regressed`` only when the candidate is worse than the base beyond **both** the
tolerance of ``configs/regression.yaml`` and the noise.  The noise, best available first:

1. **paired bootstrap** over the same test images (``bench.metrics.bootstrap.paired_bootstrap``),
   when every ok seed on both sides kept per-image statistics; with several seeds the seeds are
   resampled too, so seed-to-seed variation counts;
2. **across seeds** (Welch t-interval of the difference of means), when both sides have two or
   more ok seeds but no per-image statistics;
3. **unpaired bootstrap CIs** of single seeds (normal approximation from each trial's 95% CI);
4. **none**: the tolerance alone decides, and the row says so.

Where a side has a single seed, methods 1, 3 and 4 see no seed-to-seed variation, yet retraining
with another seed (or code that draws random numbers in another order) moves a number by about
that much.  So when the results store holds a run with several seeds of the same (model, dataset,
profile), its spread across seeds is added: ``var = var_method + sd_seed**2 * (1/n_base + 1/n_cand)``
(independent sources of noise add), and the row names the run it came from.

Verdicts: ``improved``, ``regressed``, ``unchanged``, ``new`` (only in the candidate),
``missing`` (only in the base), ``failed`` (the candidate, or both, have no ok trial).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.config.schema import RegressionConfig
from bench.results.record import TrialResult, read_results

Verdict = Literal["improved", "regressed", "unchanged", "new", "missing", "failed"]
GroupKey = tuple[str, str, str, str]  # model, task, dataset, profile


@dataclass(frozen=True)
class SeedSpread:
    """Seed-to-seed standard deviation of one metric, from a run with several seeds."""

    sd: float
    seeds: int
    run: str


#: (group, metric) -> the seed spread known for it, or None.
SpreadLookup = Callable[[GroupKey, str], SeedSpread | None]


def _spread(name: str, records: Sequence[TrialResult], metric: str) -> SeedSpread | None:
    """Sample sd of ``metric`` over the distinct seeds of ``records`` (one group), if two or more."""
    vals = [r.metrics[metric] for r in {r.seed: r for r in records}.values() if r.metrics.get(metric) is not None]
    if len(vals) < 2:
        return None
    m = _mean(vals)
    return SeedSpread(math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)), len(vals), name)


def store_spread(store: Any) -> SpreadLookup:
    """Seed spreads from the results store: the newest run with two or more ok seeds of the group."""
    cache: dict[GroupKey, list[tuple[str, list[TrialResult]]]] = {}

    def lookup(key: GroupKey, metric: str) -> SeedSpread | None:
        if key not in cache:
            cache[key] = store.replicate_runs(*key)
        return next((sp for run, recs in cache[key] if (sp := _spread(run, recs, metric))), None)

    return lookup


def files_spread(sides: Sequence[Side], then: SpreadLookup | None = None) -> SpreadLookup:
    """Seed spreads from results files with several seeds (``--replicates``), else from ``then``."""
    groups = [(side.spec, group([r for r in side.records if r.status == "ok"])) for side in sides]

    def lookup(key: GroupKey, metric: str) -> SeedSpread | None:
        for name, g in groups:
            sp = _spread(name, g.get(key, []), metric)
            if sp:
                return sp
        return then(key, metric) if then else None

    return lookup


@dataclass(frozen=True)
class Side:
    """One side of a comparison: what the user named and the records it resolved to."""

    spec: str
    description: str
    records: list[TrialResult]


@dataclass(frozen=True)
class Row:
    """One (model, dataset, profile, metric) of a comparison."""

    model: str
    task: str
    dataset: str
    profile: str
    metric: str
    verdict: Verdict
    base: float | None = None
    cand: float | None = None
    delta: float | None = None  # cand - base, in the metric's units
    ci_low: float | None = None  # CI of the delta (None: no noise estimate)
    ci_high: float | None = None
    tolerance: float | None = None
    noise: str = ""  # how the CI was obtained
    base_seeds: int = 0
    cand_seeds: int = 0
    differs: list[str] = field(default_factory=list)  # inputs that differ: config, dataset, code, ...
    base_inputs: dict[str, Any] = field(default_factory=dict)
    cand_inputs: dict[str, Any] = field(default_factory=dict)
    note: str = ""


# -- reading sides ---------------------------------------------------------------------------------
def resolve_side(spec: str, store: Any, project: Path) -> Side:
    """A results file, a run name, an MLflow parent run id or a git revision -> its records.

    A git revision (SHA prefix, ``HEAD``, a branch) means the newest run made at that commit.
    """
    path = Path(spec)
    if path.is_file():
        return Side(spec, f"results file {spec}", read_results(path))
    runs = store.runs()
    info = store.run_info(spec) or next((r for r in runs if r.mlflow_parent_id == spec), None)
    if info is None:
        sha = _git_sha(spec, project) or (spec.lower() if len(spec) >= 7 and _is_hex(spec) else None)
        info = next((r for r in runs if sha and r.git_sha.startswith(sha)), None)
    if info is None:
        known = ", ".join(r.name for r in runs[:10]) or "none yet"
        raise LookupError(
            f"{spec!r} is not a results file, a run name, an MLflow parent run id or a git revision with a run in "
            f"{store.path}; newest runs: {known}")
    records = [store.with_samples(s) for s in store.members(info.name)]
    return Side(spec, f"run {info.name} (git {info.git_sha[:12]}, code {info.code_version})", records)


def _is_hex(s: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in s)


def _git_sha(rev: str, project: Path) -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "--quiet", rev + "^{commit}"], cwd=project,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


# -- comparing -------------------------------------------------------------------------------------
def group(records: Sequence[TrialResult]) -> dict[GroupKey, list[TrialResult]]:
    """Records by (model, task, dataset, profile); one entry per seed (the newest wins a duplicate seed)."""
    out: dict[GroupKey, dict[int, TrialResult]] = {}
    for r in records:
        out.setdefault((r.model, r.task, r.dataset, r.profile), {})[r.seed] = r
    return {k: list(v.values()) for k, v in out.items()}


def inputs(records: Sequence[TrialResult]) -> dict[str, Any]:
    """What decided the numbers of a group: config (seed left out), dataset, metric spec, code, packages."""
    r = records[0]
    cfg = {k: v for k, v in r.config.items() if k != "seed"}
    return {
        "config": hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16] if cfg else None,
        "dataset": r.provenance.dataset_version,
        "metric_spec": r.provenance.metric_spec,
        "code": r.provenance.code_version,
        "git_sha": r.provenance.git_sha,
        "packages": dict(sorted(r.provenance.packages.items())),
    }


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the inputs that differ, e.g. ``["config", "code", "packages (torch)"]``.

    Code is compared by the source hash when both sides have one, else by git SHA.
    """
    out = [name for name in ("config", "dataset", "metric_spec") if a.get(name) != b.get(name)]
    if a.get("code") and b.get("code"):
        if a["code"] != b["code"]:
            out.append("code")
    elif a.get("git_sha") != b.get("git_sha"):
        out.append("code (git sha)")
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    changed = sorted(k for k in set(pa) | set(pb) if k != "bench" and pa.get(k) != pb.get(k))
    if changed:
        out.append(f"packages ({', '.join(changed)})")
    return out


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float) -> tuple[float, float]:
    """Welch t-interval of ``mean(b) - mean(a)`` (``a``, ``b``: per-seed values, 2 or more each)."""
    from scipy import stats

    va = sum((x - _mean(a)) ** 2 for x in a) / (len(a) - 1)
    vb = sum((x - _mean(b)) ** 2 for x in b) / (len(b) - 1)
    sa, sb = va / len(a), vb / len(b)
    d = _mean(b) - _mean(a)
    if sa + sb == 0:
        return d, d
    dof = (sa + sb) ** 2 / ((sa**2 / (len(a) - 1)) + (sb**2 / (len(b) - 1)) or 1e-12)
    half = float(stats.t.ppf(0.5 + level / 2, dof)) * math.sqrt(sa + sb)
    return d - half, d + half


def noise_interval(
    task: str, metric: str, base: list[TrialResult], cand: list[TrialResult], cfg: RegressionConfig,
    spread: SeedSpread | None = None,
) -> tuple[float | None, float | None, str]:
    """CI of ``cand - base`` for ``metric`` and how it was obtained (see the module docstring);
    ``spread`` widens it where a side has a single seed."""
    lo, hi, how = _method_interval(task, metric, base, cand, cfg)
    n_b = sum(r.metrics.get(metric) is not None for r in base)
    n_c = sum(r.metrics.get(metric) is not None for r in cand)
    if spread is None or min(n_b, n_c) >= 2 or not n_b or not n_c:
        return lo, hi, how
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + cfg.bootstrap.level / 2))
    d = (_avg(cand, metric) or 0.0) - (_avg(base, metric) or 0.0)  # both sides have values (n_b, n_c > 0)
    var = 0.0 if lo is None or hi is None else ((hi - lo) / (2 * z)) ** 2
    var += spread.sd**2 * (1 / n_b + 1 / n_c)
    half = z * math.sqrt(var)
    how = how.replace(": tolerance only", "") if lo is None else how
    return d - half, d + half, f"{how} + seed spread sd {spread.sd:.4f} ({spread.seeds} seeds, run {spread.run})"


def _method_interval(
    task: str, metric: str, base: list[TrialResult], cand: list[TrialResult], cfg: RegressionConfig,
) -> tuple[float | None, float | None, str]:
    """The CI from the records themselves (methods 1 to 4 of the module docstring)."""
    b = cfg.bootstrap
    if all(r.samples for r in base + cand):
        from bench.metrics.bootstrap import paired_bootstrap

        try:
            res = paired_bootstrap(task, [r.samples or {} for r in base], [r.samples or {} for r in cand], metric,
                                   b.samples, b.seed, b.level)
            return res.low, res.high, (f"paired bootstrap, {res.n_images} images x {len(base)}/{len(cand)} seeds, "
                                       f"B={b.samples}")
        except (ValueError, KeyError) as exc:
            note = f"no paired bootstrap ({exc}); "
    else:
        note = ""
    va = [r.metrics[metric] for r in base if r.metrics.get(metric) is not None]
    vb = [r.metrics[metric] for r in cand if r.metrics.get(metric) is not None]
    if len(va) >= 2 and len(vb) >= 2:
        lo, hi = welch_interval(va, vb, b.level)
        return lo, hi, note + f"across seeds (Welch t), {len(va)}/{len(vb)} seeds"
    ca = [r.ci.get(metric) for r in base]
    cb = [r.ci.get(metric) for r in cand]
    if len(va) == len(vb) == 1 and ca[0] is not None and cb[0] is not None:
        z = 1.959963984540054
        se = math.hypot((ca[0].high - ca[0].low) / (2 * z), (cb[0].high - cb[0].low) / (2 * z))
        d = vb[0] - va[0]
        from scipy import stats

        zl = float(stats.norm.ppf(0.5 + b.level / 2))
        return d - zl * se, d + zl * se, note + "unpaired: the two trials' bootstrap CIs"
    return None, None, note + "none (no per-image statistics, one seed): tolerance only"


def compare_groups(key: GroupKey, base: list[TrialResult] | None, cand: list[TrialResult] | None,
                   cfg: RegressionConfig, spread: SpreadLookup | None = None) -> list[Row]:
    """The rows of one (model, task, dataset, profile)."""
    from bench.tasks import TASKS

    model, task, dataset, profile = key
    metrics = TASKS.get(task).meta.headline_metrics if task in TASKS else ()
    ok_b = [r for r in base or [] if r.status == "ok"]
    ok_c = [r for r in cand or [] if r.status == "ok"]
    ident = {"model": model, "task": task, "dataset": dataset, "profile": profile}
    if base is None or cand is None:
        verdict: Verdict = "new" if base is None else "missing"
        side = ok_c if base is None else ok_b
        return [Row(**ident, metric=m, verdict=verdict,
                    base=None if base is None else _avg(side, m), cand=_avg(side, m) if base is None else None,
                    base_seeds=len(ok_b), cand_seeds=len(ok_c))
                for m in metrics if _avg(side, m) is not None] or [Row(**ident, metric="-", verdict=verdict)]
    ins_b, ins_c = inputs(base), inputs(cand)
    common = {"differs": differences(ins_b, ins_c), "base_inputs": ins_b, "cand_inputs": ins_c,
              "base_seeds": len(ok_b), "cand_seeds": len(ok_c)}
    if not ok_c:
        reason = next((r.error for r in cand if r.error), "") or ""
        return [Row(**ident, metric="-", verdict="failed", note=f"candidate failed: {reason[:200]}", **common)]
    if not ok_b:
        reason = next((r.error for r in base if r.error), "") or ""
        return [Row(**ident, metric=m, verdict="new", cand=_avg(ok_c, m), note=f"base failed: {reason[:200]}",
                    **common) for m in metrics if _avg(ok_c, m) is not None]
    rows = []
    for m in metrics:
        vb, vc = _avg(ok_b, m), _avg(ok_c, m)
        if vb is None and vc is None:
            continue
        if vb is None or vc is None:
            rows.append(Row(**ident, metric=m, verdict="new" if vb is None else "missing", base=vb, cand=vc,
                            **common))
            continue
        rows.append(judge(ident, m, vb, vc, ok_b, ok_c, cfg, common, spread(key, m) if spread else None))
    return rows


def judge(ident: dict[str, str], metric: str, vb: float, vc: float, base: list[TrialResult],
          cand: list[TrialResult], cfg: RegressionConfig, common: dict[str, Any], spread: SeedSpread | None = None,
          ) -> Row:
    """The verdict of one metric: beyond the tolerance and beyond the noise, or unchanged."""
    tol = cfg.tolerance(metric)
    tolerance = max(tol.abs, tol.rel * abs(vb))
    sign = 1.0 if tol.higher_is_better else -1.0
    delta = vc - vb
    lo, hi, how = noise_interval(ident["task"], metric, base, cand, cfg, spread)
    better, worse = sign * delta > tolerance, sign * delta < -tolerance
    if lo is not None and hi is not None:
        # the whole interval on one side of zero, in the metric's better/worse direction
        better = better and min(sign * lo, sign * hi) > 0
        worse = worse and max(sign * lo, sign * hi) < 0
    verdict: Verdict = "improved" if better else "regressed" if worse else "unchanged"
    return Row(**ident, metric=metric, verdict=verdict, base=vb, cand=vc, delta=delta, ci_low=lo, ci_high=hi,
               tolerance=tolerance, noise=how, **common)


def _avg(records: list[TrialResult], metric: str) -> float | None:
    vals = [r.metrics[metric] for r in records if r.metrics.get(metric) is not None]
    return _mean(vals) if vals else None


def compare(base: Side, cand: Side, cfg: RegressionConfig, spread: SpreadLookup | None = None) -> list[Row]:
    """Every row of ``base`` vs ``cand``, sorted by model, dataset, profile, metric order.

    ``spread``: seed-to-seed noise of a group where a side has one seed (:func:`store_spread`).
    """
    gb, gc = group(base.records), group(cand.records)
    rows: list[Row] = []
    for key in sorted(set(gb) | set(gc)):
        rows += compare_groups(key, gb.get(key), gc.get(key), cfg, spread)
    return rows


def gate_failed(rows: Sequence[Row]) -> bool:
    """Exit code 1 for ``bench compare``: something regressed, or a candidate trial failed."""
    return any(r.verdict in ("regressed", "failed") for r in rows)


# -- output ----------------------------------------------------------------------------------------
def _f(v: float | None, signed: bool = False) -> str:
    return "—" if v is None else (f"{v:+.4f}" if signed else f"{v:.4f}")


def to_markdown(base: Side, cand: Side, rows: Sequence[Row]) -> str:
    """The comparison as a Markdown table, with a count of each verdict."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    lines = ["# bench compare", "", f"- base: {base.description}", f"- candidate: {cand.description}",
             "- verdicts: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items())), "",
             "| model | dataset | profile | metric | base | candidate | delta | 95% CI of delta | tolerance | "
             "verdict | seeds | noise | differs |", "|" + "---|" * 13]
    for r in rows:
        ci = "—" if r.ci_low is None else f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
        note = f" ({r.note})" if r.note else ""
        lines.append(f"| {r.model} | {r.dataset} | {r.profile} | {r.metric} | {_f(r.base)} | {_f(r.cand)} | "
                     f"{_f(r.delta, True)} | {ci} | {_f(r.tolerance)} | **{r.verdict}**{note} | "
                     f"{r.base_seeds}/{r.cand_seeds} | {r.noise or '—'} | {', '.join(r.differs) or 'nothing'} |")
    return "\n".join(lines) + "\n"


def to_json(base: Side, cand: Side, rows: Sequence[Row]) -> str:
    return json.dumps({"base": base.description, "candidate": cand.description,
                       "regressed": sum(r.verdict == "regressed" for r in rows),
                       "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
