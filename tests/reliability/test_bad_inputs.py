"""Bad and unusual inputs, as a new user makes them: each ends with exactly one ``error:`` line that names
the cause, the documented exit status, and no change to any earlier run.

All cases run in this process against one prepared workspace (``workspace.py``): three finished runs
(image, text, time series) whose folders are hashed before and after every case.
"""

from __future__ import annotations

import os
import shlex

import pytest

from tests.conftest import REPO, run_cli
from tests.reliability.workspace import QUIET, build

IMG = "fit --config {quickstart} --trainer.default_root_dir={image_root} --trainer.max_epochs=1"
TXT = "fit --config {text} --trainer.default_root_dir={text_root}"
SER = "fit --config {series} --trainer.default_root_dir={series_root}"
REC = "fit --config {recall} --trainer.default_root_dir={ws}/recall"
TEST_IMG = "test --config {image_config} --trainer.default_root_dir={image_root}"
TEST_TXT = "test --config {text_config} --trainer.default_root_dir={text_root}"
TEST_SER = "test --config {series_config} --trainer.default_root_dir={series_root}"
RESUME_IMG = "fit --config {image_config} --trainer.default_root_dir={image_root}"
IMAGE_FOLDER = (
    IMG + " --data=ImageFolderDataModule --data.normalize=false --data.num_val=2 --data.batch_size=4"
)

#: (id, command, exit status, what the error line must contain)
CASES: list[tuple[str, str, int, str]] = [
    # ------------------------------------------------------------------ image: model and task arguments
    ("img-dh-wider-than-dz", IMG + " --model.backbone.mlp_dim=2048", 2, "d_h < d_z"),
    (
        "img-dz-negative",
        IMG + " --model.backbone.embed_dim=-5",
        2,
        "embed_dim must be a positive integer, got -5",
    ),
    ("img-depth-zero", IMG + " --model.backbone.depth=0", 2, "depth must be a positive integer, got 0"),
    ("img-unknown-family", IMG + " --model.backbone=NoSuchFamily", 2, "unknown class 'NoSuchFamily'"),
    (
        "img-unknown-task",
        IMG + " --model=mlplab.tasks.NoSuchTask",
        2,
        "unknown class 'mlplab.tasks.NoSuchTask'",
    ),
    ("img-argument-typo", IMG + " --model.backbone.dz=5", 2, "HourglassMLP has no argument 'dz'"),
    ("img-task-argument-typo", IMG + " --model.noise=0.5", 2, "unknown argument 'noise'"),
    ("img-output-activation", IMG + " --model.backbone.output_activation=tanhh", 2, "output_activation"),
    (
        "img-sr-scale-3",
        IMG + " --model.mode=super_resolution --model.scale=3",
        2,
        "super-resolution ×3 needs",
    ),
    (
        "img-sr-scale-1",
        IMG + " --model.mode=super_resolution --model.scale=1",
        2,
        "super-resolution ×1 needs",
    ),
    ("img-noise-zero", IMG + " --model.noise_std=0", 2, "noise_std must be positive"),
    ("img-noise-negative", IMG + " --model.noise_std=-0.1", 2, "noise_std must be positive"),
    ("img-mode-unknown", IMG + " --model.mode=deblur", 2, "model.mode"),
    (
        "img-logged-images-negative",
        IMG + " --model.num_logged_images=-1",
        2,
        "num_logged_images must be >= 0",
    ),
    (
        "img-classification-smoothing",
        IMG + " --model=ImageClassification --model.backbone=HourglassMLP --model.label_smoothing=1.5",
        2,
        "label_smoothing must be in [0, 1)",
    ),
    (
        "img-classification-mixup-negative",
        IMG + " --model=ImageClassification --model.backbone=HourglassMLP --model.mixup_alpha=-1",
        2,
        "mixup_alpha and cutmix_alpha must be >= 0",
    ),
    ("img-lr-negative", IMG + " --model.optimizer.lr=-0.1", 2, "Invalid learning rate: -0.1"),
    ("img-weight-decay-negative", IMG + " --model.optimizer.weight_decay=-1", 2, "weight_decay"),
    ("img-eps-negative", IMG + " --model.optimizer.eps=-1", 2, "Invalid epsilon value"),
    ("img-betas-out-of-range", IMG + " --model.optimizer.betas=[1.5,0.9]", 2, "Invalid beta parameter"),
    (
        "img-lr-not-a-number",
        IMG + " --model.optimizer.lr=fast",
        2,
        "model.optimizer.lr: expected float, got 'fast'",
    ),
    (
        "img-unknown-optimizer",
        IMG + " --model.optimizer=torch.optim.Nope",
        2,
        "unknown class 'torch.optim.Nope'",
    ),
    ("img-unknown-scheduler", IMG + " --model.lr_scheduler=NoSchedule", 2, "unknown class 'NoSchedule'"),
    ("img-scheduler-interval", IMG + " --model.lr_scheduler_interval=fortnight", 2, "lr_scheduler_interval"),
    ("img-warmup-negative", IMG + " --model.lr_scheduler.warmup_steps=-3", 2, "warmup_steps must be >= 0"),
    # ----------------------------------------------------------------------------- image: data arguments
    (
        "img-mnist-missing",
        IMG + " --data=MNISTDataModule --data.data_dir={nowhere} --data.download=false",
        2,
        "MNIST not found",
    ),
    (
        "img-normalize-for-restoration",
        IMG + " --data.normalize=true",
        2,
        "set data.init_args.normalize: false",
    ),
    ("img-num-val-too-large", IMG + " --data.num_val=5000", 2, "must be positive and leave training images"),
    ("img-num-val-zero", IMG + " --data.num_val=0", 2, "must be positive and leave training images"),
    ("img-batch-zero", IMG + " --data.batch_size=0", 2, "batch_size must be a positive integer, got 0"),
    ("img-batch-negative", IMG + " --data.batch_size=-4", 2, "batch_size must be a positive integer, got -4"),
    ("img-eval-batch-zero", IMG + " --data.eval_batch_size=0", 2, "eval_batch_size must be a positive"),
    ("img-source-split", IMG + " --data.source_split=val", 2, "source_split"),
    ("img-flip-copies", IMG + " --data.flip_copies=3", 2, "flip_copies"),
    ("img-crop-padding", IMG + " --data.crop_padding=-1", 2, "crop_padding must be >= 0"),
    ("img-unknown-datamodule", IMG + " --data=NoSuchData", 2, "unknown class 'NoSuchData'"),
    ("img-data-argument-typo", IMG + " --data.batchsize=8", 2, "unknown argument 'batchsize'"),
    ("img-folder-missing", IMAGE_FOLDER + " --data.root={nowhere}", 2, "image folder not found"),
    (
        "img-folder-size-zero",
        IMAGE_FOLDER + " --data.root={ws}/images --data.image_size=0",
        2,
        "image_size must be a positive integer, got 0",
    ),
    ("img-folder-channels", IMAGE_FOLDER + " --data.root={ws}/images --data.channels=2", 2, "channels"),
    ("img-folder-broken-jpeg", IMAGE_FOLDER + " --data.root={ws}/images_broken", 2, "cannot decode"),
    ("img-folder-two-sizes", IMAGE_FOLDER + " --data.root={ws}/images_sizes", 2, "images differ in size"),
    (
        "img-folder-other-classes",
        IMAGE_FOLDER + " --data.root={ws}/images_classes",
        2,
        "differ from those of train/",
    ),
    ("img-folder-a-file", IMAGE_FOLDER + " --data.root={ws}/a_file", 2, "neither a folder nor a .tar"),
    # -------------------------------------------------------------------------------- trainer arguments
    ("trainer-max-epochs-word", IMG + " --trainer.max_epochs=many", 2, "trainer.max_epochs: expected int"),
    (
        "trainer-max-epochs-negative",
        IMG + " --trainer.max_epochs=-3",
        2,
        "`max_epochs` must be a non-negative",
    ),
    ("trainer-max-steps-negative", IMG + " --trainer.max_steps=-5", 2, "max_steps"),
    ("trainer-gpu-without-gpu", IMG + " --trainer.accelerator=gpu", 2, "gpu"),
    (
        "trainer-unknown-accelerator",
        IMG + " --trainer.accelerator=abacus",
        2,
        "trainer: You selected an invalid accelerator name: `accelerator='abacus'`",
    ),
    ("trainer-devices-zero", IMG + " --trainer.devices=0", 2, "devices"),
    ("trainer-precision", IMG + " --trainer.precision=7", 2, "precision"),
    ("trainer-limit-negative", IMG + " --trainer.limit_train_batches=-1", 2, "limit_train_batches"),
    (
        "trainer-val-interval-zero",
        IMG + " --trainer.val_check_interval=0",
        2,
        "val_check_interval must be positive",
    ),
    (
        "trainer-root-under-a-file",
        IMG + " --trainer.default_root_dir={ws}/a_file/runs",
        2,
        "is a file, not a folder",
    ),
    ("trainer-root-unwritable", IMG + " --trainer.default_root_dir=/proc/mlplab-runs", 2, "/proc"),
    ("trainer-abbreviated-argument", IMG + " --trainer.max_epoch=3", 2, "max_epoch"),
    ("trainer-unknown-argument", IMG + " --trainer.epochs=3", 2, "epochs"),
    ("seed-not-a-number", IMG + " --seed_everything=abc", 2, "seed_everything"),
    ("unknown-top-level-key", IMG + " --learning_rate=0.1", 2, "learning_rate"),
    ("unknown-subcommand", "train --config {quickstart}", 2, "train"),
    # ----------------------------------------------------------------------------- callbacks' arguments
    ("checkpoint-mode", IMG + " --checkpoint.mode=sideways", 2, "sideways"),
    (
        "early-stopping-monitor-without-direction",
        IMG + " --trainer.callbacks+=EarlyStopping --trainer.callbacks.monitor=lr-AdamW",
        2,
        "trainer.callbacks.mode: give max or min for EarlyStopping's monitor lr-AdamW",
    ),
    (
        "checkpoint-last-steps-zero",
        IMG + " --checkpoint.last_every_n_steps=0",
        2,
        "last_every_n_steps must be positive",
    ),
    (
        "checkpoint-last-minutes-negative",
        IMG + " --checkpoint.last_every_minutes=-1",
        2,
        "last_every_minutes must be positive",
    ),
    (
        "checkpoint-monitor-typo",
        IMG + " --checkpoint.monitor=val/ssmi",
        2,
        "'val/ssmi' is not a metric this run logs",
    ),
    (
        "checkpoint-monitor-typo-no-sanity",
        IMG + " --checkpoint.monitor=val/psrn --trainer.num_sanity_val_steps=0",
        2,
        "'val/psrn' is not a metric this run logs",
    ),
    (
        "divergence-check-zero",
        IMG + " --divergence.check_every_n_steps=0",
        2,
        "check_every_n_steps must be positive",
    ),
    ("throughput-window-zero", IMG + " --throughput.window_size=0", 2, "window_size must be a positive"),
    (
        "compile-mode",
        IMG + " --compile.enabled=true --compile.mode=fastest",
        2,
        "compile: Unrecognized mode=fastest",
    ),
    # -------------------------------------------------------------------------------------- YAML files
    ("yaml-list", IMG + " --config {ws}/list.yaml", 2, "list.yaml: the top level must be a mapping"),
    ("yaml-empty", IMG + " --config {ws}/empty.yaml", 2, "empty.yaml is empty"),
    ("yaml-tab", IMG + " --config {ws}/tab.yaml", 2, "tab.yaml, line 2, column 1"),
    (
        "yaml-duplicate-key",
        IMG + " --config {ws}/duplicate.yaml",
        2,
        "duplicate.yaml, line 3: the key 'max_epochs'",
    ),
    (
        "yaml-duplicate-section",
        IMG + " --config {ws}/duplicate_top.yaml",
        2,
        "the key 'trainer' is given twice",
    ),
    ("yaml-broken-flow", IMG + " --config {ws}/broken.yaml", 2, "broken.yaml, line 2"),
    ("yaml-scalar", IMG + " --config {ws}/scalar.yaml", 2, "not a single string"),
    ("yaml-unclosed-quote", IMG + " --config {ws}/unclosed_quote.yaml", 2, "unclosed_quote.yaml, line"),
    ("yaml-bad-indent", IMG + " --config {ws}/bad_indent.yaml", 2, "bad_indent.yaml, line 3"),
    ("yaml-not-utf8", IMG + " --config {ws}/latin1.yaml", 2, "latin1.yaml is not UTF-8"),
    ("yaml-missing-file", IMG + " --config {ws}/no_such.yaml", 2, "no_such.yaml"),
    ("yaml-a-folder", IMG + " --config {ws}/images", 2, "images"),
    # --------------------------------------------------------------------------------- time series data
    ("series-inf", SER + " --data.file={ws}/series_inf.csv", 2, "infinite values"),
    ("series-1e400", SER + " --data.file={ws}/series_1e400.csv", 2, "'1e400'"),
    ("series-minus-inf", SER + " --data.file={ws}/series_minus_inf.csv", 2, "infinite values"),
    ("series-nan", SER + " --data.file={ws}/series_nan.csv", 2, "missing values (NaN or empty)"),
    (
        "series-empty-cell",
        SER + " --data.file={ws}/series_empty_cell.csv",
        2,
        "missing values (NaN or empty)",
    ),
    ("series-word", SER + " --data.file={ws}/series_word.csv", 2, "a value is not a number"),
    ("series-too-short", SER + " --data.file={ws}/series_short.csv", 2, "fewer than lookback + horizon"),
    ("series-header-only", SER + " --data.file={ws}/series_header_only.csv", 2, "has a header but no rows"),
    ("series-empty-file", SER + " --data.file={ws}/series_empty.csv", 2, "is empty"),
    ("series-bad-dates", SER + " --data.file={ws}/series_bad_dates.csv", 2, "cannot read the dates"),
    ("series-missing-file", SER + " --data.file={ws}/no_such.csv", 2, "no_such.csv not found"),
    ("series-no-target", SER + " --data.target=temperature", 2, "has no target 'temperature'"),
    ("series-no-date-column", SER + " --data.date_column=when", 2, "has no date column 'when'"),
    ("series-lookback-zero", SER + " --data.lookback=0", 2, "lookback must be a positive integer"),
    ("series-horizon-negative", SER + " --data.horizon=-12", 2, "horizon must be a positive integer"),
    ("series-lookback-too-long", SER + " --data.lookback=500", 2, "fewer than lookback + horizon"),
    ("series-features", SER + " --data.features=X", 2, "features"),
    ("series-freq", SER + " --data.freq=fortnightly", 2, "freq must be one of"),
    (
        "series-fractions",
        SER + " --data.train_fraction=0.9 --data.test_fraction=0.2",
        2,
        "leave rows for validation",
    ),
    ("series-batch-zero", SER + " --data.batch_size=0", 2, "batch_size must be a positive integer, got 0"),
    (
        "series-eval-batch-zero",
        SER + " --data.eval_batch_size=0",
        2,
        "eval_batch_size must be a positive integer",
    ),
    ("series-sha256", SER + " --data.sha256=" + "0" * 64, 2, "fails its sha256 check"),
    ("series-ett-name", SER + " --data=ETTDataModule --data.name=ETTh9", 2, "ETTh9"),
    ("series-predict-split", SER + " --data.predict_split=later", 2, "predict_split"),
    ("series-date-column-null", SER + " --data.date_column=null", 2, "date_column is null but column 'date'"),
    ("series-table-format", SER + " --predictions.table_format=xlsx", 2, "predictions.table_format"),
    # -------------------------------------------------------------------------- loggers and export
    (
        "logger-unknown-preset",
        IMG + f" --config {REPO}/configs/logger/neptune.yaml",
        2,
        "no logger preset 'neptune'",
    ),
    ("export-unknown-format", "export --run {image_run} --format tflite", 2, "--format must be one of"),
    ("export-no-run", "export --run {nowhere} --format safetensors", 2, "no run at"),
    (
        "export-no-checkpoint",
        "export --run {image_run} --format safetensors --checkpoint middle",
        2,
        "no middle.ckpt",
    ),
    ("series-revin-word", SER + " --model.revin=maybe", 2, "model.revin"),
    (
        "series-family-argument",
        SER + " --model.backbone.moving_avg=-3",
        2,
        "must be a positive integer, got -3",
    ),
    # --------------------------------------------------------------------------------------------- text
    ("text-file-missing", TXT + " --data.text_file={ws}/no_such.txt", 2, "text_file not found"),
    ("text-file-empty", TXT + " --data.text_file={ws}/empty.txt", 2, "is empty"),
    ("text-file-not-utf8", TXT + " --data.text_file={ws}/latin1.txt", 2, "is not UTF-8"),
    ("text-file-too-short", TXT + " --data.text_file={ws}/short.txt", 2, "fewer than context_length + 1"),
    ("text-context-zero", TXT + " --data.context_length=0", 2, "context_length must be a positive integer"),
    ("text-batch-zero", TXT + " --data.batch_size=0", 2, "batch_size must be a positive integer"),
    ("text-batches-per-epoch-zero", TXT + " --data.batches_per_epoch=0", 2, "batches_per_epoch must be"),
    ("text-val-fraction", TXT + " --data.val_fraction=1.5", 2, "val_fraction must be between 0 and 1"),
    ("text-corpus", TXT + " --data.text_file=null --data.corpus=wikipedia", 2, "wikipedia"),
    (
        "text-seed-and-shuffle-seed",
        TXT + " --data.seed=0 --data.shuffle_seed=1",
        2,
        "seed (the old name of shuffle_seed) is 0 and shuffle_seed is 1; give shuffle_seed only",
    ),
    (
        "text-sample-temperature",
        TXT + " --model.sample_temperature=-1",
        2,
        "sample_length and sample_temperature",
    ),
    (
        "text-sample-prompt",
        TXT + " --model.sample_length=5 --model.sample_prompt=QQQ",
        2,
        "has characters outside the data's vocabulary",
    ),
    ("text-sample-top-k", TXT + " --model.sample_top_k=0", 2, "sample_top_k must be a positive integer"),
    ("text-sample-prompt-empty", TXT + " --model.sample_prompt=''", 2, "sample_prompt is empty"),
    ("text-heads", TXT + " --model.backbone.num_heads=3", 2, "must divide"),
    (
        "text-mlp-ratio-without-channel-mlp",
        TXT + " --model.backbone=Mamba --model.backbone.mlp_ratio=2",
        2,
        "mlp_ratio=2.0 has no effect without a channel MLP",
    ),
    ("text-channel-mlp-kind", TXT + " '--model.backbone.channel_mlp={{kind: wide}}'", 2, "wide"),
    # ---------------------------------------------------------------------------------- recall (MQAR)
    ("recall-batch-zero", REC + " --data.batch_size=0", 2, "batch_size must be a positive integer, got 0"),
    ("recall-eval-batch-zero", REC + " --data.eval_batch_size=0", 2, "eval_batch_size must be a positive"),
    ("recall-length-zero", REC + " --data.sequence_length=0", 2, "sequence_length must be a positive"),
    ("recall-pairs-zero", REC + " --data.num_kv_pairs=0", 2, "num_kv_pairs must be a positive"),
    ("recall-length-odd", REC + " --data.sequence_length=65", 2, "sequence_length must be even"),
    ("recall-too-many-pairs", REC + " --data.num_kv_pairs=20", 2, "20 key-value pairs"),
    ("recall-vocab-small", REC + " --data.vocab_size=32", 2, "vocab_size must exceed sequence_length"),
    (
        "recall-preset",
        REC + " --data.preset=1024x1",
        2,
        "data.preset: expected '64x4', '128x8', '256x16' or '512x64', got '1024x1'",
    ),
    ("recall-power", REC + " --data.power_a=0", 2, "power_a must be positive"),
    (
        "recall-examples-zero",
        REC + " --data.num_train_examples=0",
        2,
        "num_train_examples must be a positive",
    ),
    ("recall-no-preset", REC + " --data.preset=null", 2, "without a preset, give"),
    # ------------------------------------------------------------------------------------ checkpoints
    ("ckpt-missing", TEST_IMG + " --ckpt_path={ws}/missing.ckpt", 2, "checkpoint not found"),
    ("ckpt-junk", TEST_IMG + " --ckpt_path={ws}/junk.ckpt", 2, "cannot read the checkpoint"),
    ("ckpt-empty", TEST_IMG + " --ckpt_path={ws}/empty.ckpt", 2, "is empty (0 bytes)"),
    ("ckpt-truncated", TEST_IMG + " --ckpt_path={truncated}", 2, "damaged, cut off"),
    ("ckpt-flipped-byte", TEST_IMG + " --ckpt_path={flipped}", 2, "fails its CRC-32 check"),
    ("ckpt-tensor", TEST_IMG + " --ckpt_path={ws}/tensor.ckpt", 2, "not a Lightning checkpoint"),
    ("ckpt-other-zip", TEST_IMG + " --ckpt_path={ws}/other.zip.ckpt", 2, "cannot read the checkpoint"),
    ("ckpt-folder", TEST_IMG + " --ckpt_path={ws}/folder.ckpt", 2, "checkpoint not found"),
    (
        "ckpt-best-without-fit",
        TEST_IMG + " --ckpt_path=best --trainer.default_root_dir={nowhere}",
        2,
        "there is no best.ckpt",
    ),
    (
        "ckpt-last-without-fit",
        RESUME_IMG + " --ckpt_path=last --trainer.default_root_dir={nowhere}",
        2,
        "there is no last.ckpt",
    ),
    (
        "ckpt-validate-last-without-fit",
        "validate --config {image_config} --ckpt_path=last --trainer.default_root_dir={nowhere}",
        2,
        "there is no last.ckpt",
    ),
    (
        "ckpt-last-in-a-named-run",
        RESUME_IMG
        + " --ckpt_path=last --trainer.logger=TensorBoardLogger --trainer.logger.save_dir={image_root} "
        "--trainer.logger.version=9",
        2,
        "there is no last.ckpt in {image_root}/lightning_logs/version_9/checkpoints",
    ),
    (
        "ckpt-predict-without",
        "predict --config {image_config} --trainer.default_root_dir={image_root}",
        2,
        "predict needs --ckpt_path",
    ),
    (
        "ckpt-architecture-dh",
        TEST_IMG + " --ckpt_path={image_best} --model.backbone.mlp_dim=64",
        2,
        "model.backbone.mlp_dim: the checkpoint best.ckpt was trained with 32, this run gives 64",
    ),
    (
        "ckpt-series-other-scale",
        TEST_SER + " --ckpt_path={series_best} --data.scale=false",
        2,
        "data.scale: the checkpoint's model was trained with scale True, the data now gives False",
    ),
    (
        "ckpt-architecture-family",
        TEST_IMG + " --ckpt_path={image_best} --model.backbone=ConventionalMLP",
        2,
        "model.backbone: the checkpoint best.ckpt was trained with 'mlplab.models.HourglassMLP'",
    ),
    (
        "ckpt-architecture-mode",
        TEST_IMG + " --ckpt_path={image_best} --model.mode=generative_classification",
        2,
        "model.mode: the checkpoint best.ckpt was trained with 'denoise'",
    ),
    (
        "ckpt-architecture-sr-scale",
        TEST_IMG + " --ckpt_path={image_best} --model.mode=super_resolution",
        2,
        "model.mode",
    ),
    (
        "ckpt-resume-lr",
        RESUME_IMG + " --ckpt_path={image_last} --model.optimizer.lr=0.01",
        2,
        "model.optimizer.lr: the checkpoint last.ckpt was trained with 0.001, this run gives 0.01",
    ),
    (
        "ckpt-resume-other-seed",
        RESUME_IMG + " --ckpt_path={image_last} --seed_everything=1",
        2,
        "seed_everything: the run of last.ckpt was seeded with 0, this run gives 1",
    ),
    (
        "ckpt-resume-optimizer",
        RESUME_IMG + " --ckpt_path={image_last} --model.optimizer=torch.optim.SGD --model.optimizer.lr=0.001",
        2,
        "model.optimizer: the checkpoint last.ckpt was trained with",
    ),
    (
        "ckpt-other-data",
        TEST_IMG + " --ckpt_path={image_best} --data=ImageFolderDataModule --data.root={ws}/images "
        "--data.normalize=false --data.num_val=2 --data.channels=1",
        2,
        "num_classes 10 there, 2 here",
    ),
    (
        "ckpt-text-in-image-config",
        TEST_IMG + " --ckpt_path={text_best}",
        2,
        "it holds a model of the LanguageModeling task",
    ),
    (
        "ckpt-image-in-text-config",
        TEST_TXT + " --ckpt_path={image_best}",
        2,
        "it holds a model of the ImageRestoration task",
    ),
    (
        "ckpt-text-other-vocabulary",
        TEST_TXT + " --ckpt_path={text_best} --data.text_file={ws}/text_b.txt",
        2,
        "trained on another character vocabulary",
    ),
    (
        "ckpt-text-other-context",
        TEST_TXT + " --ckpt_path={text_best} --data.context_length=32",
        2,
        "context_length=16",
    ),
    ("ckpt-series-other-horizon", TEST_SER + " --ckpt_path={series_best} --data.horizon=24", 2, "horizon 12"),
    (
        "ckpt-series-other-target",
        TEST_SER + " --ckpt_path={series_best} --data.target=a",
        2,
        "trained on the series a, b, OT in this order, the data now gives b, OT, a",
    ),
    (
        "ckpt-series-revin",
        TEST_SER + " --ckpt_path={series_best} --model.revin=true",
        2,
        "model.revin: the checkpoint best.ckpt was trained with False, this run gives True",
    ),
    (
        "ckpt-series-family-argument",
        TEST_SER + " --ckpt_path={series_best} --model.backbone.individual=true",
        2,
        "model.backbone.individual",
    ),
    # --------------------------------------------------------------------- sweeps (their command line)
    (
        "sweep-file-missing",
        "sweep --config {ws}/no_such_sweep.yaml --out {ws}/sweep_out",
        2,
        "no_such_sweep.yaml",
    ),
    ("sweep-file-list", "sweep --config {ws}/list.yaml --out {ws}/sweep_out", 2, "list.yaml"),
    ("sweep-file-tab", "sweep --config {ws}/tab.yaml --out {ws}/sweep_out", 2, "tab.yaml"),
    ("sweep-file-empty", "sweep --config {ws}/empty.yaml --out {ws}/sweep_out", 2, "empty.yaml"),
    (
        "sweep-unknown-override",
        "sweep --config {sweep} --out {ws}/sweep_out --dry-run --model.backbone.dz=3",
        2,
        "has no argument 'dz'",
    ),
    (
        "sweep-negative-seed",
        "sweep --config {sweep} --out {ws}/sweep_out --dry-run --seeds=[0,-1]",
        2,
        "seeds: expected integers from 0 to 4294967295, got -1",
    ),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    built = build(tmp_path_factory.mktemp("reliability"))
    built.paths["sweep"] = str(REPO / "configs" / "sweeps" / "quickstart.yaml")
    built.before = built.digests()
    return built


def test_the_suite_is_large_and_names_are_unique():
    assert len(CASES) >= 120
    assert len({case[0] for case in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "command", "status", "cause"), CASES, ids=[case[0] for case in CASES])
def test_bad_input(workspace, capsys, name, command, status, cause):
    if name == "trainer-root-unwritable" and not os.path.isdir("/proc/self"):
        pytest.skip("needs /proc, a folder where no one can create folders")
    args = shlex.split(workspace.fill(command))
    capsys.readouterr()
    quiet = [] if args[0] == "export" else QUIET  # export trains nothing: no trainer arguments
    assert run_cli(*args, *quiet) == status
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err[-2000:]
    assert workspace.fill(cause) in errors[0], errors[0]
    assert "Traceback" not in err
    assert workspace.digests() == workspace.before, "an earlier run folder changed"
