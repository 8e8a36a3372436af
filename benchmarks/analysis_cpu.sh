#!/usr/bin/env bash
# Looking inside small trained models on a CPU (issue 18): the runs and commands behind the "Looking
# inside trained models" section of docs/results.md.
#
#   MLPLAB_DATA=/path/to/shared/data bash benchmarks/analysis_cpu.sh runs/analysis
#
# Trains, each without and with DEFT's density loss: the quickstart (Hourglass MLP on the digits),
# a small character Transformer on Tiny Shakespeare and Google's TSMixer on ETTh1 (lookback 512,
# horizon 96) with four blocks; then, on each baseline, the similarity profile (mlplab analyze
# similarity), the test metric after dropping 1 and 2 attention / mixer layers (mlplab drop-layers)
# and at 50/80/90 % global magnitude sparsity (mlplab prune, one-shot; at 80 % also with the Minimum
# Threshold and with a short fine-tune), and the activation density of every run (mlplab analyze
# density). One thread per process (the machine is shared). Results: report.json, similarity.md and
# density.md under each run's analysis/ folder; collect them with benchmarks/analysis_table.py.
set -euo pipefail
OUT=${1:-runs/analysis}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
MLPLAB="python -m mlplab"
QUIET="--trainer.enable_progress_bar=false --trainer.enable_model_summary=false --trainer.accelerator=cpu"
DEFT="--model.density.weight=1.0 --model.density.eps=1e-7"   # the official scripts' lambda and epsilon

fit() {  # fit NAME ARGS...: train once (a finished run is kept)
  local name=$1; shift
  local run="$OUT/$name/lightning_logs/version_0"
  if [ -f "$run/checkpoints/best.ckpt" ] && [ -f "$OUT/$name/done" ]; then return; fi
  rm -rf "${OUT:?}/$name"
  $MLPLAB fit "$@" --trainer.default_root_dir="$OUT/$name" $QUIET
  touch "$OUT/$name/done"
}

# --- the runs
fit qs --config configs/quickstart.yaml
fit qs-deft --config configs/quickstart.yaml $DEFT
fit qs-deft-eps --config configs/quickstart.yaml --model.density.weight=0.1 --model.density.eps=1e-2
SHAKESPEARE=(--config configs/text/transformer_shakespeare.yaml --model.backbone.embed_dim=48
  --model.backbone.depth=4 --model.backbone.num_heads=4 --model.backbone.dropout=0.0
  --model.optimizer.init_args.lr=3e-3 --data.context_length=32 --data.batch_size=16
  --data.batches_per_epoch=100 --trainer.max_epochs=6 --trainer.limit_val_batches=20
  --model.sample_length=0)
fit tf "${SHAKESPEARE[@]}"
fit tf-deft "${SHAKESPEARE[@]}" $DEFT
ETTH1=(--config configs/timeseries/tsmixer_google_etth1_96.yaml --model.backbone.depth=4
  --trainer.max_epochs=10)
fit ts "${ETTH1[@]}"
fit ts-deft "${ETTH1[@]}" $DEFT

# --- looking inside
for name in qs qs-deft qs-deft-eps tf tf-deft ts ts-deft; do
  run="$OUT/$name/lightning_logs/version_0"
  $MLPLAB analyze density --run "$run" --batches 20 --threshold 0 0.01 0.1
done
for name in qs tf ts; do
  run="$OUT/$name/lightning_logs/version_0"
  $MLPLAB analyze similarity --run "$run" --batches 20
  for sparsity in 0.5 0.8 0.9; do
    $MLPLAB prune --run "$run" --sparsity $sparsity
  done
  $MLPLAB prune --run "$run" --sparsity 0.8 --min-weights-per-layer 1000 --out "$run/analysis/prune-0.8-mt1000"
  $MLPLAB prune --run "$run" --sparsity 0.8 --finetune-steps 200
done
for name in tf ts; do
  run="$OUT/$name/lightning_logs/version_0"
  for count in 1 2; do
    $MLPLAB drop-layers --run "$run" --part attention --count $count --batches 20
  done
  $MLPLAB drop-layers --run "$run" --part mlp --count 1 --batches 20
done
run="$OUT/qs/lightning_logs/version_0"   # the Hourglass MLP has no attention: its MLP blocks instead
for count in 1 2; do
  $MLPLAB drop-layers --run "$run" --part mlp --count $count --batches 20
done
