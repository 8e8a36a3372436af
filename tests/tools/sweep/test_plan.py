"""Planning: meta counts equal real ones, the budget filter, fitted widths, runs keyed by their config."""

from __future__ import annotations

import pytest

from mlplab.cli import MLPLabCLI
from mlplab.errors import ConfigError
from mlplab.models import count_parameters
from mlplab.tools.sweep.plan import (
    Candidate,
    ShapeCounter,
    backbone_argument,
    count_on_meta,
    plan_sweep,
    run_arguments,
    settings_difference,
)
from mlplab.tools.sweep.spec import load_sweep
from tests.conftest import REPO
from tests.tools.sweep.conftest import CONVENTIONAL, HOURGLASS, QUICKSTART, write_sweep

COUNT_CASES = {
    "hourglass, fixed W_in": (
        [f"--config={QUICKSTART}", "--model.backbone.embed_dim=128", "--model.backbone.mlp_dim=16",
         "--model.backbone.depth=2", "--model.backbone.fixed_input_projection=true"],
        (128 * (128 + 2 * 2 * 16), 128 * (64 + 2 * 2 * 16)),
    ),
    "conventional, switched from the hourglass recipe": (
        [f"--config={QUICKSTART}",
         backbone_argument(load_sweep(REPO / "configs/sweeps/quickstart.yaml").families[1],
                           {"mlp_dim": 300, "depth": 2})],
        (2 * 64 * 64 + 2 * 2 * 64 * 300,) * 2,
    ),
    "conventional on MNIST, super-resolution (embed_dim = d_y)": (
        [f"--config={REPO / 'configs/image/conventional_mnist_sr.yaml'}", "--model.backbone.depth=2"],
        (196 * 784 + 2 * 2 * 784 * 785 + 784 * 784,) * 2,
    ),
}  # fmt: skip


@pytest.mark.parametrize(("args", "expected"), COUNT_CASES.values(), ids=COUNT_CASES.keys())
def test_meta_counts_equal_real_counts(args, expected):
    total, trainable, task = count_on_meta(args)
    assert all(p.is_meta for p in task.parameters())  # nothing was allocated
    real = MLPLabCLI(args=args, run=False)
    assert (total, trainable) == count_parameters(real.model.backbone) == expected


def test_budget_filter_keeps_the_shapes_within_the_tolerance(tmp_path):
    grid = {"embed_dim": [64, 128, 256], "mlp_dim": [8, 16], "depth": [1, 2]}
    spec = load_sweep(
        write_sweep(
            tmp_path,
            families={"hourglass": {"class_path": "HourglassMLP", "grid": grid}},
            budgets=["10k", "40k"],
            tolerance=0.1,
            seeds=[0, 1],
            options={"model.init_args.optimizer.init_args.lr": [0.001, 0.01]},
        )
    )
    plan = plan_sweep(spec, tmp_path / "out")
    expected = {}
    for embed_dim in grid["embed_dim"]:
        for mlp_dim in grid["mlp_dim"]:
            for depth in grid["depth"]:
                params = embed_dim * (128 + 2 * depth * mlp_dim)
                for budget in (10_000, 40_000):
                    if abs(params - budget) <= 0.1 * budget:
                        expected[f"embed_dim={embed_dim} mlp_dim={mlp_dim} depth={depth}"] = budget
    kept = {c.shape_text: c.budget for c in plan.candidates if c.budget is not None}
    assert kept == expected and len(kept) == 6  # of the 12 shapes
    assert len(plan.runs) == len(kept) * 2 * 2  # x 2 learning rates x 2 seeds
    assert (
        len({run.run_id for run in plan.runs}) == len({run.config_key for run in plan.runs}) == len(plan.runs)
    )
    assert plan.metric == "val/psnr" and plan.mode == "max"  # the task's own monitor
    assert not (tmp_path / "out").exists()  # planning writes nothing

    run = next(r for r in plan.runs if r.options == "lr=0.01" and r.seed == 1)
    assert run.config["seed_everything"] == 1  # each run is resolved to its full config
    assert run.config["model"]["init_args"]["optimizer"]["init_args"]["lr"] == 0.01
    backbone = run.config["model"]["init_args"]["backbone"]["init_args"]
    assert (
        f"embed_dim={backbone['embed_dim']} mlp_dim={backbone['mlp_dim']} depth={backbone['depth']}"
        == run.shape
    )
    # one curve per family: the runs differ only in shape, options and seed
    assert len({r.series_key for r in plan.runs}) == 1


def test_an_option_that_changes_the_model_size_is_refused(tmp_path):
    # counts and budgets are taken with the first option values: a depth option used to give the
    # depth-2 runs the depth-1 count (and budget) in results.csv and on the Pareto figure
    hourglass = {"class_path": "HourglassMLP", "grid": {"embed_dim": [64, 128], "mlp_dim": [8]}}
    spec = load_sweep(
        write_sweep(tmp_path, families={"hourglass": hourglass},
                    options={"model.init_args.backbone.init_args.depth": [1, 2]})
    )  # fmt: skip
    expected = (
        r"the hourglass shape .* has 10,240 parameters with depth=2 but 9,216 with depth=1: options must"
    )
    with pytest.raises(ConfigError, match=expected):
        plan_sweep(spec, tmp_path / "out")


def test_runs_are_keyed_by_their_resolved_config(tmp_path):
    first = plan_sweep(load_sweep(write_sweep(tmp_path)), tmp_path / "out").runs
    wider = {
        "class_path": "HourglassMLP",
        "grid": {"embed_dim": [64, 128, 256], "mlp_dim": [8], "depth": [1]},
    }
    more = plan_sweep(
        load_sweep(write_sweep(tmp_path, families={"hourglass": wider, "conventional": CONVENTIONAL},
                               seeds=[0, 1], budgets=[9216, 18432, 36864])),
        tmp_path / "out",
    ).runs  # fmt: skip
    assert {r.run_id for r in first} < {r.run_id for r in more}  # more shapes, budgets, seeds: runs kept
    changed = plan_sweep(load_sweep(write_sweep(tmp_path), ["--trainer.max_epochs=2"]), tmp_path / "out").runs
    assert not {r.run_id for r in first} & {r.run_id for r in changed}  # a changed override: new runs
    assert {r.series_key for r in first}.isdisjoint({r.series_key for r in changed})
    # the same setting spelled another way (full key, short key) is the same run
    same = plan_sweep(load_sweep(write_sweep(tmp_path), ["--trainer.max_epochs=1"]), tmp_path / "out").runs
    assert [r.run_id for r in same] == [r.run_id for r in first]


def test_settings_difference_names_what_changed():
    earlier = {"trainer.max_epochs": 3, "model.init_args.optimizer.init_args.lr": 0.01, "data.init_args.x": 1}
    current = {
        "trainer.max_epochs": 20,
        "model.init_args.optimizer.init_args.lr": 0.001,
        "data.init_args.x": 1,
    }
    assert settings_difference(earlier, current) == "lr=0.01 max_epochs=3"
    assert settings_difference(current, current) == "same settings"


def test_fit_solves_the_width_for_each_budget(tmp_path):
    spec = load_sweep(
        write_sweep(
            tmp_path,
            families={
                "hourglass": {
                    "class_path": "HourglassMLP",
                    "grid": {
                        "embed_dim": [64, 256],
                        "depth": [1, 2],
                    },  # embed_dim = 64 refuses the recipe's mlp_dim = 128,
                    "fit": "mlp_dim",  # where the search starts: it starts again from 1
                },
                # widths up to 64 are refused (mlp_dim > embed_dim = 64): the search starts at the
                # default 1024
                "conventional": {"class_path": "ConventionalMLP", "grid": {"depth": [1]}, "fit": "mlp_dim"},
            },
            budgets=[16_000, 50_000, 100_000],
            tolerance=0.02,
        )
    )
    plan = plan_sweep(spec, tmp_path / "out")
    kept = {(c.family.name, c.shape_text): c.params_total for c in plan.candidates if c.budget}
    assert kept == {
        ("hourglass", "embed_dim=64 mlp_dim=61 depth=1"): 16_000,
        ("hourglass", "embed_dim=64 mlp_dim=30 depth=2"): 15_872,
        ("hourglass", "embed_dim=256 mlp_dim=34 depth=1"): 50_176,
        ("hourglass", "embed_dim=256 mlp_dim=17 depth=2"): 50_176,
        ("hourglass", "embed_dim=256 mlp_dim=131 depth=1"): 99_840,
        ("hourglass", "embed_dim=256 mlp_dim=66 depth=2"): 100_352,
        ("conventional", "mlp_dim=327 depth=1"): 50_048,
        ("conventional", "mlp_dim=717 depth=1"): 99_968,
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", [p.name for p in sorted((REPO / "configs" / "sweeps").glob("*.yaml"))])
def test_every_sweep_config_meets_its_budgets(name, tmp_path):
    plan = plan_sweep(load_sweep(REPO / "configs" / "sweeps" / name), tmp_path)
    assert {run.budget for run in plan.runs} == set(plan.spec.budgets)


def test_fit_keeps_the_widest_shape_the_family_accepts_when_the_budget_needs_a_wider_one(tmp_path):
    # embed_dim 64, depth 1: 64 (128 + 2 mlp_dim) parameters; 17k needs mlp_dim 69, but the hourglass
    # takes at most mlp_dim 63 (16,256 parameters, 4.4 % below the budget): that shape is kept
    spec = load_sweep(
        write_sweep(
            tmp_path,
            families={
                "hourglass": {
                    "class_path": "HourglassMLP",
                    "grid": {"embed_dim": [64], "depth": [1]},
                    "fit": "mlp_dim",
                }
            },
            budgets=[17_000],
            tolerance=0.05,
        )
    )
    plan = plan_sweep(spec, tmp_path / "out")
    assert [(run.shape, run.params_total, run.budget) for run in plan.runs] == [
        ("embed_dim=64 mlp_dim=63 depth=1", 16_256, 17_000)
    ]


class MultiplesOfFour(ShapeCounter):
    """Counts ``100 x^2`` parameters and refuses every ``x`` that is not a multiple of 4 (no model built)."""

    def count(self, family, shape):
        shape = family.ordered(shape)
        candidate = Candidate(family, shape, [])
        x = shape[family.fit]
        if x % 4:
            candidate.refused = f"num_heads=4 must divide embed_dim={x}"
        else:
            candidate.params_total = candidate.params_trainable = 100 * x * x
        return candidate


def test_fit_finds_a_width_the_family_takes_when_it_needs_a_multiple(tmp_path):
    # a Transformer with 4 heads takes multiples of 4 only: the secant step from the starting widths
    # lands on a refused value; it used to end the search at the bisection edge far from the budget
    # (a 2-head Transformer had no shape at a 20k budget and was left out of the sweep)
    spec = load_sweep(
        write_sweep(
            tmp_path,
            families={"mlp": {"class_path": "HourglassMLP", "grid": {"depth": [1]}, "fit": "mlp_dim"}},
            budgets=[193_600],  # 100 * 44^2; the search starts at the recipe's 128
            tolerance=0.05,
        )
    )
    counter = MultiplesOfFour(spec, {})
    [found] = counter.fit(spec.families[0], {"depth": 1})
    assert (found.shape["mlp_dim"], found.params_total) == (44, 193_600)


def test_runs_are_judged_by_the_metric_their_best_checkpoint_follows(tmp_path):
    # checkpoint.monitor in the overrides (or a recipe) chooses the best checkpoint, so best_val and
    # test are of that metric: the sweep names it, not the task's own val/psnr
    path = write_sweep(tmp_path)
    plan = plan_sweep(load_sweep(path, ["--checkpoint.monitor=val/loss"]), tmp_path / "out")
    assert (plan.metric, plan.mode) == ("val/loss", "min")
    assert {(run.metric, run.mode, run.config["checkpoint"]["monitor"]) for run in plan.runs} == {
        ("val/loss", "min", "val/loss")
    }
    with pytest.raises(ConfigError, match=r"best checkpoint by val/foo .*set metric: and mode:"):
        plan_sweep(load_sweep(path, ["--checkpoint.monitor=val/foo"]), tmp_path / "out")
    plan = plan_sweep(load_sweep(path), tmp_path / "out")  # nothing set: the task's monitor
    assert (plan.metric, plan.mode) == ("val/psnr", "max")


REJECTED = {
    "unknown option key": (
        {"options": {"trainer.max_epochz": [1, 2]}},
        [],
        "sweep.yaml: options: trainer.max_epochz: unrecognized arguments: --trainer.max_epochz=1",
    ),
    "option the optimizer does not take": (
        {"options": {"model.init_args.optimizer.init_args.lrr": [0.1]}},
        [],
        "sweep.yaml: options: model.init_args.optimizer.init_args.lrr: model.optimizer: AdamW has no "
        "argument 'lrr'",
    ),
    "option value of the wrong type": (
        {"options": {"trainer.max_epochs": ["two"]}},
        [],
        "sweep.yaml: options: trainer.max_epochs: expected int, got 'two'",
    ),
    "unknown override": (
        {"overrides": {"trainer.max_epochz": 1}},
        [],
        "sweep.yaml: overrides: trainer.max_epochz: unrecognized arguments: --trainer.max_epochz=1",
    ),
    "unknown command-line argument": (
        {},
        ["--trainer.devices", "1", "--data.init_args.batch_sizee", "8"],
        "sweep.yaml: command line: --data.init_args.batch_sizee 8: data: unknown argument 'batch_sizee'",
    ),
}


@pytest.mark.parametrize(("changes", "args", "message"), REJECTED.values(), ids=REJECTED.keys())
def test_a_rejected_argument_is_named_where_it_stands(tmp_path, changes, args, message):
    # every rejection used to be blamed on the first family ("families.hourglass: ..."), whatever key
    changes = {"families": {"hourglass": HOURGLASS}, **changes}
    spec = load_sweep(write_sweep(tmp_path, **changes), args)
    with pytest.raises(ConfigError) as error:
        plan_sweep(spec, tmp_path / "out")
    assert str(error.value) == message


def test_an_option_value_the_runs_cannot_be_built_with_is_named_with_its_family(tmp_path):
    # a later option value that a file, family or task refuses was counted as "refused" and ignored:
    # the runs were planned (a config file with a key given twice: every one would fail), or resolving
    # them ended with "sweep.yaml: options: in "<unicode string>", line 2, column 1" (a tab)
    (tmp_path / "good.yaml").write_text("trainer:\n  max_epochs: 1\n")
    (tmp_path / "tab.yaml").write_text("trainer:\n\tmax_epochs: 1\n")
    (tmp_path / "twice.yaml").write_text("trainer:\n  max_epochs: 1\n  max_epochs: 2\n")
    cases = {
        "config": (
            [str(tmp_path / "good.yaml"), str(tmp_path / "tab.yaml")],
            f"{tmp_path / 'tab.yaml'}, line 2, column 1: not valid YAML (a tab character: YAML indents "
            "with spaces only)",
        ),
        "model.init_args.noise_std": ([0.2, -0.1], "ImageRestoration: noise_std must be positive"),
    }
    for key, (values, reason) in cases.items():
        families = {"hourglass": HOURGLASS, "conventional": CONVENTIONAL}
        spec = load_sweep(write_sweep(tmp_path, families=families, options={key: values}))
        with pytest.raises(ConfigError) as error:
            plan_sweep(spec, tmp_path / "out")
        assert str(error.value).startswith(
            f"sweep.yaml: options: {key}={values[1]}: the hourglass runs cannot be built with it: {reason}"
        )
    twice = {"config": [str(tmp_path / "good.yaml"), str(tmp_path / "twice.yaml")]}
    spec = load_sweep(write_sweep(tmp_path, families={"hourglass": HOURGLASS}, options=twice))
    with pytest.raises(ConfigError, match=r"options: config=.*twice.yaml: the hourglass runs .* given twice"):
        plan_sweep(spec, tmp_path / "out")


def test_a_run_config_that_cannot_be_resolved_names_its_family_and_options(tmp_path):
    (tmp_path / "tab.yaml").write_text("trainer:\n\tmax_epochs: 1\n")
    spec = load_sweep(write_sweep(tmp_path, families={"hourglass": HOURGLASS}))
    family, shape = spec.families[0], {"embed_dim": 64, "mlp_dim": 8, "depth": 1}
    counter = ShapeCounter(spec, {})
    counter.count(family, shape)  # builds the runs' parser
    options = {"config": str(tmp_path / "tab.yaml")}
    with pytest.raises(ConfigError) as error:
        counter.resolve(run_arguments(spec, family, shape, options), family, options)
    assert str(error.value).startswith(
        f"sweep.yaml: families.hourglass: options: config={tmp_path / 'tab.yaml'}: "
    )


def test_runs_whose_readable_ids_collide_get_distinct_stable_ids(tmp_path):
    # the readable part of an id keeps only [A-Za-z0-9._=-]: "preds a.pt" and "preds+a.pt" read the
    # same; the hash of the resolved config that ends every id keeps the runs apart
    files = ["preds a.pt", "preds+a.pt"]
    single = {"class_path": "HourglassMLP", "grid": {"embed_dim": [64], "mlp_dim": [8], "depth": [1]}}
    path = write_sweep(
        tmp_path, families={"hourglass": single}, budgets=[9216], options={"predictions.filename": files}
    )
    runs = plan_sweep(load_sweep(path), tmp_path / "out").runs
    readable = {run.run_id.rsplit("-", 1)[0] for run in runs}
    assert readable == {"hourglass-embed_dim64-mlp_dim8-depth1-filenamepreds_a.pt-s0"}  # they collide
    assert len({run.run_id for run in runs}) == 2
    assert [run.run_id.rsplit("-", 1)[1] for run in runs] == [run.config_key for run in runs]
    assert sorted(run.config["predictions"]["filename"] for run in runs) == files
    again = plan_sweep(load_sweep(path), tmp_path / "out").runs  # a re-plan: the same ids, same runs
    assert [(r.run_id, r.options) for r in again] == [(r.run_id, r.options) for r in runs]


def test_a_class_given_as_a_mapping_in_options_and_overrides_reaches_the_runs_as_written(tmp_path):
    # jsonargparse expanded such a value into every argument of the class (params=None for an
    # optimizer), which the runs' parser refused; the options one crashed with a traceback
    sgd = {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}
    adamw = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.001}}
    constant = {"class_path": "torch.optim.lr_scheduler.ConstantLR", "init_args": {"factor": 0.5}}
    path = write_sweep(
        tmp_path,
        families={"hourglass": HOURGLASS},
        budgets=[9216],
        options={"model.init_args.optimizer": [adamw, sgd]},
        overrides={"trainer.max_epochs": 1, "model.init_args.lr_scheduler": constant},
    )
    runs = plan_sweep(load_sweep(path), tmp_path / "out").runs
    optimizers = [run.config["model"]["init_args"]["optimizer"] for run in runs]
    assert [(o["class_path"], o["init_args"]["lr"]) for o in optimizers] == [
        ("torch.optim.AdamW", 0.001),
        ("torch.optim.SGD", 0.1),
    ]
    schedulers = [run.config["model"]["init_args"]["lr_scheduler"] for run in runs]
    assert all(s["class_path"].endswith("ConstantLR") and s["init_args"]["factor"] == 0.5 for s in schedulers)


def test_a_budget_whose_shapes_are_nearer_another_one_is_named_as_such(tmp_path):
    # hourglass 9,216 parameters lies within 9.5k ± 10 % but is counted at the budget 9,216: the line
    # said "no shape of any family has 8.55k to 10.45k total parameters (... closest: ... with 9.2k)"
    spec = load_sweep(write_sweep(tmp_path, budgets=[9216, 9500], tolerance=0.1))
    with pytest.raises(ConfigError) as raised:
        plan_sweep(spec, tmp_path / "out")
    assert "every shape within 9.5k ± 10% is nearer another budget" in str(raised.value)
    assert "hourglass embed_dim=64 mlp_dim=8 depth=1 with 9.22k at 9.22k" in str(raised.value)
