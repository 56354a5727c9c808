#!/usr/bin/env bash
# The exact commands behind LiverTumorSegLib/models/MODEL_CARD.md (run from the repository root).
# Usage: bash Training/ship.sh final | loco | collect | install
set -euo pipefail
step=${1:-final}
LIVER_CMD="python -m Training.train --config Training/configs/liver.yaml train.out_dir=Training/runs/final_liver train.progress=false"
TUMOR_CMD="python -m Training.train --config Training/configs/tumor.yaml train.out_dir=Training/runs/final_tumor_v4 train.progress=false"
NOTE_LOCO="leave-one-case-out over the 3 shared cases chaos_ct3, totalseg_ct, lits117_roi (python -m Training.loco --cases chaos_ct3 totalseg_ct lits117_roi --out-dir Training/runs/loco_v4): both stages retrained without the case, full cascade (LiverTumorSegLib.segment) on the case, metrics on its CT grid; chaos_ct3 and totalseg_ct references are silver (model-made) liver labels, totalseg_ct has no tumor annotation; 2-core shared CPU."
NOTE_TRAIN="shared_data_training_cases: the shipped models on their own training cases (resubstitution, NOT held-out), python -m Training.evaluate --split all, reproduced by Testing/training/test_shipped_models.py."
case $step in
  final)
    $LIVER_CMD
    $TUMOR_CMD ;;
  loco)
    python -m Training.loco --cases chaos_ct3 totalseg_ct lits117_roi --out-dir Training/runs/loco_v4 ;;
  collect)  # after folds run separately (e.g. in parallel): gather them into loco_metrics.csv
    python -m Training.loco --cases chaos_ct3 totalseg_ct lits117_roi --out-dir Training/runs/loco_v4 --collect ;;
  install)
    python -m Training.export --checkpoint Training/runs/final_liver/last.pt --out-dir Training/runs/final_export
    python -m Training.export --checkpoint Training/runs/final_tumor_v4/last.pt --out-dir Training/runs/final_export
    python -m Training.evaluate --config Training/configs/liver.yaml --split all --models-dir Training/runs/final_export \
        --out-dir Training/runs/eval_shipped
    for stage in liver tumor; do
      python -m Training.record_metrics --stage $stage --loco Training/runs/loco_v4/loco_metrics.csv \
          --training-cases Training/runs/eval_shipped/metrics.csv --note "$NOTE_LOCO $NOTE_TRAIN" \
          --out Training/runs/${stage}_metrics.json
    done
    python -m Training.export --checkpoint Training/runs/final_liver/last.pt --out-dir Training/runs/final_export \
        --metrics Training/runs/liver_metrics.json --version 0.1.0 --install \
        --training-data "shared data: chaos_ct3 (CHAOS CT patient 3, silver liver label), totalseg_ct (TotalSegmentator example CT, silver liver label), lits117_roi (LiTS case 117 liver crop, expert liver+tumor labels, heavily augmented)" \
        --training-command "$LIVER_CMD"
    python -m Training.export --checkpoint Training/runs/final_tumor_v4/last.pt --out-dir Training/runs/final_export \
        --metrics Training/runs/tumor_metrics.json --version 0.1.0 --install \
        --training-data "liver ROIs (10 mm margin, 1.5 mm) of chaos_ct3, totalseg_ct, lits117_roi; real tumors only in lits117_roi (expert labels); synthetic tumors inserted into the livers of the others" \
        --training-command "$TUMOR_CMD" ;;
esac
