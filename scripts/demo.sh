#!/usr/bin/env bash
# The main job on the built-in default, end to end: FP32 training on the procedural
# SyntheticScenes dataset -> evaluation -> quantization-aware fine-tuning -> INT8 export ->
# FP32 against INT8 under Paddle Inference (oneDNN): mIoU, latency, size, printed as a table.
# Writes everything under output/demo. Needs nothing but Python 3.11 and the registry.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
CFG=configs/demo/bisenetv2_synthetic_96x128_300.yml
QAT_CFG=configs/demo/bisenetv2_synthetic_96x128_qat100.yml
OUT=output/demo
echo "== OMP_NUM_THREADS=$OMP_NUM_THREADS"
echo "== 1/5 FP32 training"
python train.py --config "$CFG" --save_dir "$OUT/fp32" --do_eval --save_interval 100 --log_iters 25
echo "== 2/5 evaluation of the best FP32 checkpoint"
python val.py --config "$CFG" --model_path "$OUT/fp32/best_model/model.pdparams" \
    --result_json "$OUT/fp32/val.json"
echo "== 3/5 quantization-aware fine-tuning from it"
python slim/qat_train.py --config "$QAT_CFG" --model_path "$OUT/fp32/best_model/model.pdparams" \
    --save_dir "$OUT/qat" --do_eval --save_interval 50 --log_iters 25
echo "== 4/5 INT8 export"
python slim/qat_export.py --config "$QAT_CFG" --model_path "$OUT/qat/best_model/model.pdparams" \
    --save_dir "$OUT/int8_infer"
echo "== 5/5 FP32 against INT8: exports run by Paddle Inference (oneDNN), side by side"
rm -f "$OUT/compare/results.md"
python tools/compare_int8.py --config "$QAT_CFG" --fp32_model "$OUT/fp32/best_model/model.pdparams" \
    --model_path "$OUT/qat/best_model/model.pdparams" --save_dir "$OUT/compare" \
    --input_shape 1 3 96 128 --cpu_threads "$OMP_NUM_THREADS" \
    --result_json "$OUT/compare/results.json" --out "$OUT/compare/results.md" \
    --title "Built-in default: BiSeNetV2 on SyntheticScenes, FP32 against QAT INT8"
