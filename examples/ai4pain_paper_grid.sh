#!/usr/bin/env bash
# The Tiny-BioMoE paper's AI4PAIN grid (Kyprakis, Tsiknakis, Gkikas 2025) with the SDK's commands:
# each representation alone, intra-modality fusion, multimodal fusion.
#
# NEEDS TWO THINGS THIS REPOSITORY DOES NOT HAVE, without which there are no paper numbers to get:
#   - the published weights, Tiny-BioMoE.pth (github.com/GkikasStefanos/Tiny-BioMoE);
#   - the AI4PAIN 2025 data (from the challenge organisers, under their terms): 65 participants in training (41),
#     validation (12) and test (12, labels withheld) partitions; EDA, BVP, respiration and SpO2; three classes,
#     No Pain, Low Pain, High Pain.
# With random weights or other data, the same commands run and measure something else. The SIMULATED stand-in
# that runs anywhere is examples/simulated_heads.py.
#
# What the paper reports (3 classes, validation partition):
#   intra-modality fusion, EDA scalogram + recurrence ............................ 77.88 %
#   multimodal fusion, EDA + BVP + respiration + SpO2 (its best) ................ 82.41 %
# The authors' head is ELU -> Linear(192, C) on the frozen embeddings, trained with Adam at 1e-3 (their README):
# train-head's default `elu-linear`. Their fusion operator is not published; this script concatenates (the
# default; try --fusion mean or weighted). Their segmentation and image parameters may differ from the SDK's one
# documented rendering (docs/transforms.md), so expect to land near, not on, their figures.
#
# Input layout this script expects (convert your AI4PAIN download to it once; its own layout decides how):
#   $AI4PAIN/train/<participant>.csv, $AI4PAIN/validation/<participant>.csv: one column per signal, named in $MAP,
#       sampled at $RATE Hz (or add a time column and pass --time-column to embed instead of --rate);
#   $AI4PAIN/train_labels.csv, $AI4PAIN/validation_labels.csv: "subject,start_s,end_s,label" rows, subject = the
#       CSV's name without .csv, times in seconds from the file's start, label in {no_pain, low_pain, high_pain}.
#
#   AI4PAIN=/data/ai4pain CHECKPOINT=Tiny-BioMoE.pth RATE=100 examples/ai4pain_paper_grid.sh
set -euo pipefail

AI4PAIN=${AI4PAIN:?set AI4PAIN to the converted dataset folder (see the header)}
CHECKPOINT=${CHECKPOINT:?set CHECKPOINT to the published Tiny-BioMoE.pth}
RATE=${RATE:?set RATE to the sampling rate of the CSV files, in Hz}
MAP=${MAP:-Eda:eda,Bvp:bvp,Resp:resp,SpO2:spo2}   # CSV column -> modality
WINDOW=${WINDOW:-10}                                 # seconds per window
HOP=${HOP:-10}                                       # seconds between windows
OUT=${OUT:-build/ai4pain}
REPRESENTATIONS=spectrogram_psd,scalogram,recurrence,waveform
CLASSES=no_pain,low_pain,high_pain

mkdir -p "$OUT/heads" "$OUT/eval"

# 1. Embeddings of both partitions with the published weights (the same Pipeline the gateway runs live).
for part in train validation; do
  [ -e "$OUT/$part" ] || biomoe-edge embed "$AI4PAIN/$part"/*.csv --map "$MAP" --rate "$RATE" \
      --labels "$AI4PAIN/${part}_labels.csv" --representations "$REPRESENTATIONS" \
      --window "$WINDOW" --hop "$HOP" --engine pytorch --checkpoint "$CHECKPOINT" --out "$OUT/$part"
done

# 2. The grid: train-head on the training partition (leave-one-subject-out inside it), evaluate-head on validation.
run() {  # run NAME INPUTS
  biomoe-edge train-head "$OUT/train" --inputs "$2" --out "$OUT/heads/$1" --classes "$CLASSES" --cv loso
  biomoe-edge evaluate-head "$OUT/heads/$1" "$OUT/validation" --json "$OUT/eval/$1.json"
}
for modality in eda bvp resp spo2; do
  for representation in ${REPRESENTATIONS//,/ }; do
    run "${modality}_${representation}" "$modality:$representation"                    # each representation alone
  done
  run "${modality}_scalogram_recurrence" "$modality:scalogram,$modality:recurrence"      # intra-modality fusion
done
run multimodal_scalogram "eda:scalogram,bvp:scalogram,resp:scalogram,spo2:scalogram"  # multimodal fusion
run multimodal_scalogram_recurrence \
  "eda:scalogram,eda:recurrence,bvp:scalogram,bvp:recurrence,resp:scalogram,resp:recurrence,spo2:scalogram,spo2:recurrence"

# 3. The table, beside the paper's two figures.
python - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
paper = {"eda_scalogram_recurrence": "77.88 %", "multimodal_scalogram_recurrence": "82.41 % (their fusion)"}
print("| head | validation accuracy | balanced accuracy | macro F1 | paper |")
print("| --- | --- | --- | --- | --- |")
for path in sorted((out / "eval").glob("*.json")):
    r = json.loads(path.read_text())
    weights = " (RANDOM weights!)" if r["random_weights"] else ""
    print(f"| {path.stem}{weights} | {r['accuracy']:.2%} | {r['balanced_accuracy']:.2%} | {r['macro_f1']:.3f} | "
          f"{paper.get(path.stem, '')} |")
EOF

# 4. Serve the best head live: put its folder in [[heads]] of your gateway TOML (docs/heads.md), or try it on
#    emulated wearables: biomoe-edge demo --head "$OUT/heads/multimodal_scalogram_recurrence" --checkpoint "$CHECKPOINT"
#    (the demo's wearables play SIMULATED sessions, not AI4PAIN: its live accuracy says nothing about pain).
