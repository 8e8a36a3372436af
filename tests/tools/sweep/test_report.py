"""The outputs keep a sweep's history: earlier runs stay in results.csv, best.csv and pareto.png, marked."""

from __future__ import annotations

from mlplab.tools.sweep import report
from mlplab.tools.sweep.plan import plan_sweep
from mlplab.tools.sweep.spec import load_sweep
from tests.tools.sweep.conftest import HOURGLASS, finish, quiet, read_csv, write_sweep


def test_a_changed_override_keeps_the_earlier_runs_marked_with_their_settings(tmp_path):
    out = tmp_path / "out"
    path = write_sweep(tmp_path)
    earlier = plan_sweep(load_sweep(path), out)
    for run, value in zip(earlier.runs, (10.0, 11.0, 12.0)):
        finish(run, value)
    now = plan_sweep(load_sweep(path, ["--trainer.max_epochs=2"]), out)
    assert not {r.run_id for r in now.runs} & {r.run_id for r in earlier.runs}
    finish(now.runs[0], 20.0)

    records = report.collect(now)
    assert len(records) == 4
    assert [r.run_id for r in records if r.current] == [now.runs[0].run_id]
    assert {r.settings for r in records if not r.current} == {"max_epochs=1"}

    report.write_results(out, records)
    report.write_outputs(now, records, quiet)
    rows = read_csv(out / "results.csv")
    assert [(r["current"], r["settings"]) for r in rows] == [("yes", "")] + [("no", "max_epochs=1")] * 3
    best = {(r["budget"], r["family"], r["settings"], r["current"]) for r in read_csv(out / "best.csv")}
    assert ("9216", "hourglass", "max_epochs=1", "no") in best and (
        "18432",
        "conventional",
        "max_epochs=1",
        "no",
    ) in best
    assert (str(now.runs[0].budget), now.runs[0].family, "", "yes") in best
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_narrowed_sweep_keeps_its_dropped_runs_on_the_same_curve(tmp_path):
    out = tmp_path / "out"
    earlier = plan_sweep(load_sweep(write_sweep(tmp_path, seeds=[0, 1])), out)
    for run in earlier.runs:
        finish(run, 10.0 + run.seed)
    now = plan_sweep(load_sweep(write_sweep(tmp_path, seeds=[0])), out)  # seed 1 dropped
    records = report.collect(now)
    assert len(records) == 6 and sum(r.current for r in records) == 3
    assert {r.settings for r in records} == {""}  # same settings: same curves, seeds still averaged
    report.write_outputs(now, records, quiet)
    assert {r["seeds"] for r in read_csv(out / "best.csv")} == {"2"}


def test_runs_judged_by_another_metric_stay_in_results_only(tmp_path, capsys):
    out = tmp_path / "out"
    earlier = plan_sweep(load_sweep(write_sweep(tmp_path, metric="val/loss")), out)
    for run in earlier.runs:
        finish(run, 0.5)
    now = plan_sweep(load_sweep(write_sweep(tmp_path)), out)
    finish(now.runs[0], 9.0)
    records = report.collect(now)
    report.write_outputs(now, records, print)
    assert len(records) == 4 and len(read_csv(out / "best.csv")) == 1
    assert "3 earlier runs kept (3 judged by another metric: in results.csv only)" in capsys.readouterr().out


def test_finished_runs_are_reported_at_the_budgets_of_the_sweep_as_now_planned(tmp_path):
    out = tmp_path / "out"
    earlier = plan_sweep(load_sweep(write_sweep(tmp_path, tolerance=0.15)), out)
    for run in earlier.runs:
        finish(run, 10.0)
    # 18.4k becomes 17k: the same runs (17,408 and 18,432 parameters) now belong to 17k
    now = plan_sweep(load_sweep(write_sweep(tmp_path, tolerance=0.15, budgets=[9216, 17000])), out)
    assert not now.pending() and {run.budget for run in now.runs} == {9216, 17000}
    records = report.collect(now)
    assert {record.budget for record in records} == {9216, 17000}
    report.write_results(out, records)
    report.write_outputs(now, records, quiet)
    assert {row["budget"] for row in read_csv(out / "results.csv")} == {"9216", "17000"}
    assert sorted((r["budget"], r["family"]) for r in read_csv(out / "best.csv")) == [
        ("17000", "conventional"),
        ("17000", "hourglass"),
        ("9216", "hourglass"),
    ]


def test_earlier_runs_of_a_dropped_family_are_not_averaged_across_their_settings(tmp_path):
    out = tmp_path / "out"
    path = write_sweep(tmp_path)
    for args, value in (([], 10.0), (["--trainer.max_epochs=2"], 20.0)):
        for run in plan_sweep(load_sweep(path, args), out).runs:
            finish(run, value)
    now = plan_sweep(load_sweep(write_sweep(tmp_path, families={"hourglass": HOURGLASS})), out)
    records = report.collect(now)
    dropped = {(r.settings, r.best_val) for r in records if r.family == "conventional"}
    assert dropped == {("earlier settings", 10.0), ("max_epochs=2", 20.0)}  # the first: as now, but dropped
    report.write_outputs(now, records, quiet)
    conventional = [r for r in read_csv(out / "best.csv") if r["family"] == "conventional"]
    assert sorted((r["settings"], r["seeds"], r["best_val"]) for r in conventional) == [
        ("earlier settings", "1", "10.0"),
        ("max_epochs=2", "1", "20.0"),
    ]


def test_best_csv_gives_the_spread_over_seeds_and_leaves_it_empty_for_one_seed(tmp_path):
    # best.csv had the seed mean only (best_val, test); a single seed must give no spread, not 0
    out = tmp_path / "out"
    plan = plan_sweep(load_sweep(write_sweep(tmp_path, seeds=[0, 1, 2])), out)
    shape = plan.runs[0].shape  # one shape finishes with three seeds, the others with one
    for run in plan.runs:
        if run.shape == shape or run.seed == 0:
            finish(run, 10.0 + 2 * run.seed)  # test = best_val - 0.5
    report.write_outputs(plan, report.collect(plan), quiet)
    rows = {row["shape"]: row for row in read_csv(out / "best.csv")}
    spread = ["best_val_std", "best_val_min", "best_val_max", "test_std", "test_min", "test_max"]
    three = rows.pop(shape)
    assert [three[key] for key in ["seeds", "best_val", *spread, "test"]] == [
        "3", "12.0", "2.0", "10.0", "14.0", "2.0", "9.5", "13.5", "11.5"
    ]  # fmt: skip
    assert rows and all(row["seeds"] == "1" and not any(row[key] for key in spread) for row in rows.values())


def test_earlier_settings_whose_descriptions_collide_stay_apart_with_a_stable_hash(tmp_path):
    # settings texts name at most 3 differing keys: two earlier series that differ only in a fourth
    # read the same and get " #<hash of the series>", the same each time the outputs are written
    out = tmp_path / "out"
    single = {"class_path": "HourglassMLP", "grid": {"embed_dim": [64], "mlp_dim": [8], "depth": [1]}}
    path = write_sweep(tmp_path, families={"hourglass": single}, budgets=[9216])
    changed = [
        "--data.init_args.batch_size=16",
        "--trainer.limit_test_batches=2",
        "--trainer.limit_train_batches=1",
    ]
    series = {}
    for epochs, value in ((2, 20.0), (3, 30.0)):
        (run,) = plan_sweep(load_sweep(path, [*changed, f"--trainer.max_epochs={epochs}"]), out).runs
        finish(run, value)
        series[value] = run.series_key
    now = plan_sweep(load_sweep(path), out)
    text = "batch_size=16 limit_test_batches=2 limit_train_batches=1 (+1)"
    expected = {(f"{text} #{key[:6]}", value) for value, key in series.items()}
    assert {(r.settings, r.best_val) for r in report.collect(now)} == expected
    again = plan_sweep(load_sweep(path), out)  # a re-plan describes them the same way
    assert {(r.settings, r.best_val) for r in report.collect(again)} == expected
    report.write_outputs(again, report.collect(again), quiet)
    assert {(r["settings"], float(r["best_val"])) for r in read_csv(out / "best.csv")} == expected


def test_the_report_says_how_many_failed_runs_diverged(tmp_path, capsys):
    # a diverged run was one of the failed ones, the same as a crash
    out = tmp_path / "out"
    plan = plan_sweep(load_sweep(write_sweep(tmp_path)), out)
    finish(plan.runs[0], 9.0)
    finish(plan.runs[1], 0.0, status="failed")
    diverged = finish(plan.runs[2], 0.0, status="failed")
    diverged.error = "training diverged: the training loss became nan at step 4 (epoch 0, batch 3)"
    diverged.write("result.json")
    report.write_outputs(plan, report.collect(plan), print)
    assert "3 of 3 runs finished (2 failed, 1 of them diverged)" in capsys.readouterr().out
