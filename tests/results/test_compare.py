"""``bench compare``: verdicts need the tolerance AND the noise; inputs that differ are named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.config.schema import RegressionConfig, Tolerance
from bench.results.compare import Side, compare, differences, gate_failed, inputs
from bench.results.record import read_results, write_results
from tests.results.helpers import classification_samples, record

CFG = RegressionConfig(default=Tolerance(abs=0.02))


def verdicts(base: list, cand: list, cfg: RegressionConfig = CFG) -> dict[tuple[str, str], str]:
    rows = compare(Side("b", "b", base), Side("c", "c", cand), cfg)
    return {(r.model, r.metric): r.verdict for r in rows}


def test_new_missing_failed() -> None:
    base = [record("a"), record("b"), record("c")]
    cand = [record("a"), record("c", status="failed", top1=None), record("d")]
    v = verdicts(base, cand)
    assert v[("a", "top1")] == "unchanged"
    assert v[("b", "top1")] == "missing"
    assert v[("c", "-")] == "failed"
    assert v[("d", "top1")] == "new"
    assert gate_failed(compare(Side("b", "b", base), Side("c", "c", cand), CFG))  # a failed candidate gates


def test_tolerance_alone_when_there_is_no_noise_estimate() -> None:
    v = verdicts([record(top1=0.84)], [record(top1=0.37)])
    assert v[("resnet18", "top1")] == "regressed"
    assert verdicts([record(top1=0.84)], [record(top1=0.83)])[("resnet18", "top1")] == "unchanged"  # within 0.02
    assert verdicts([record(top1=0.50)], [record(top1=0.60)])[("resnet18", "top1")] == "improved"


def test_across_seeds_noise_keeps_a_noisy_drop_unchanged() -> None:
    base = [record(seed=s, top1=v) for s, v in enumerate((0.70, 0.90, 0.80))]
    noisy = [record(seed=s, top1=v) for s, v in enumerate((0.85, 0.62, 0.78))]  # mean -0.05, spread 0.1
    clear = [record(seed=s, top1=v) for s, v in enumerate((0.40, 0.42, 0.41))]
    assert verdicts(base, noisy)[("resnet18", "top1")] == "unchanged"
    rows = compare(Side("b", "b", base), Side("c", "c", clear), CFG)
    row = next(r for r in rows if r.metric == "top1")
    assert row.verdict == "regressed" and "Welch" in row.noise and row.ci_high < 0


def test_single_seed_bootstrap_cis_as_noise() -> None:
    wide = verdicts([record(top1=0.80, ci=(0.6, 0.95))], [record(top1=0.75, ci=(0.55, 0.9))])
    assert wide[("resnet18", "top1")] == "unchanged"  # 0.05 worse, but inside the noise
    tight = verdicts([record(top1=0.80, ci=(0.78, 0.82))], [record(top1=0.75, ci=(0.73, 0.77))])
    assert tight[("resnet18", "top1")] == "regressed"


def test_paired_bootstrap_on_per_image_statistics() -> None:
    rng = np.random.default_rng(0)
    right = rng.random(300) < 0.85
    base = [record(top1=float(right.mean()), samples=classification_samples(right))]
    same = [record(top1=float(right.mean()), samples=classification_samples(right))]
    worse_mask = right & (rng.random(300) < 0.6)  # loses ~40% of its correct images
    worse = [record(top1=float(worse_mask.mean()), samples=classification_samples(worse_mask))]
    assert verdicts(base, same)[("resnet18", "top1")] == "unchanged"
    rows = compare(Side("b", "b", base), Side("c", "c", worse), CFG)
    row = next(r for r in rows if r.metric == "top1")
    assert row.verdict == "regressed" and row.noise.startswith("paired bootstrap, 300 images")
    assert row.ci_low <= row.delta <= row.ci_high


def test_differences_name_config_dataset_code_and_packages() -> None:
    a = inputs([record()])
    b = inputs([record(config={"model": "resnet18", "seed": 0, "train": {"lr": 0.1}}, code="other",
                       packages={"torch": "2.15.0"})])
    assert differences(a, b) == ["config", "code", "packages (torch)"]
    assert differences(a, inputs([record(seed=3, config={"model": "resnet18", "seed": 3,
                                                         "train": {"lr": 0.001}})])) == []  # seed is not config
    old = inputs([record(code=None, git_sha="b" * 40)])
    assert differences(inputs([record(code=None)]), old) == ["code (git sha)"]


def test_results_files_of_older_versions_are_read(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    write_results(path, [record()])
    obj = json.loads(path.read_text())
    obj[0]["removed_field"] = 1  # a field this version no longer has
    obj[0]["provenance"]["old_thing"] = "x"
    for k in ("key", "ci", "samples", "efficiency", "training"):
        obj[0].pop(k, None)  # fields an older version did not write
    path.write_text(json.dumps(obj))
    (rec,) = read_results(path)
    assert rec.metrics["top1"] == 0.9 and rec.key is None


def test_seed_spread_from_the_store_widens_single_seed_comparisons(tmp_path: Path) -> None:
    from bench.results.compare import store_spread
    from bench.results.store import ResultsStore

    store = ResultsStore(tmp_path / "r.db")
    store.start_run("replicates", "all", "cpu", "sha", "code")
    for s, v in enumerate((0.80, 0.86, 0.83)):  # seed sd 0.03
        store.add("replicates", record(seed=s, top1=v, key=f"r{s}"))
    base, cand = [record(top1=0.84)], [record(top1=0.80)]  # 0.04 worse: beyond 0.02, within seed noise
    assert verdicts(base, cand)[("resnet18", "top1")] == "regressed"  # tolerance alone
    rows = compare(Side("b", "b", base), Side("c", "c", cand), CFG, store_spread(store))
    row = next(r for r in rows if r.metric == "top1")
    assert row.verdict == "unchanged" and "seed spread sd 0.0300 (3 seeds, run replicates)" in row.noise
    assert row.ci_low < 0 < row.ci_high
    far = compare(Side("b", "b", base), Side("c", "c", [record(top1=0.40)]), CFG, store_spread(store))
    assert next(r for r in far if r.metric == "top1").verdict == "regressed"
    # a group with no replicates in the store: nothing to add
    other = compare(Side("b", "b", [record("x", top1=0.84)]), Side("c", "c", [record("x", top1=0.80)]), CFG,
                    store_spread(store))
    assert next(r for r in other if r.metric == "top1").verdict == "regressed"
