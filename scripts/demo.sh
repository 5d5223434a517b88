#!/usr/bin/env bash
# The main job on the built-in default, end to end: FP32 training on the procedural
# SyntheticScenes dataset -> evaluation -> quantization-aware fine-tuning -> INT8 export ->
# FP32 against INT8 under Paddle Inference (oneDNN), then across backends (Paddle Inference,
# ONNX Runtime, OpenVINO, beside peer post-training INT8): mIoU, latency, size, speed-up,
# printed as tables.
# Writes everything under output/demo. Needs nothing but Python 3.11 and the registry.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
CFG=configs/demo/bisenetv2_synthetic_96x128_300.yml
QAT_CFG=configs/demo/bisenetv2_synthetic_96x128_qat100.yml
OUT=output/demo
echo "== OMP_NUM_THREADS=$OMP_NUM_THREADS"
# The demo owns output/demo: a re-run replaces its previous runs (--overwrite), where a
# user's run into a used --save_dir is refused.
echo "== 1/6 FP32 training"
python train.py --config "$CFG" --save_dir "$OUT/fp32" --do_eval --save_interval 100 --log_iters 25 \
    --overwrite
echo "== 2/6 evaluation of the best FP32 checkpoint"
python val.py --config "$CFG" --model_path "$OUT/fp32/best_model/model.pdparams" \
    --result_json "$OUT/fp32/val.json"
echo "== 3/6 quantization-aware fine-tuning from it"
python slim/qat_train.py --config "$QAT_CFG" --model_path "$OUT/fp32/best_model/model.pdparams" \
    --save_dir "$OUT/qat" --do_eval --save_interval 50 --log_iters 25 --overwrite
echo "== 4/6 exports: FP32 and INT8, each also with the arg max before the final resize"
SHAPE="-1 3 96 128"  # any batch; a fixed H, W as ONNX needs
python export.py --config "$CFG" --model_path "$OUT/fp32/best_model/model.pdparams" \
    --save_dir "$OUT/fp32_infer" --input_shape $SHAPE
python export.py --config "$CFG" --model_path "$OUT/fp32/best_model/model.pdparams" \
    --save_dir "$OUT/fp32_fast_infer" --input_shape $SHAPE --argmax_before_resize
python slim/qat_export.py --config "$QAT_CFG" --model_path "$OUT/qat/best_model/model.pdparams" \
    --save_dir "$OUT/int8_infer" --input_shape $SHAPE
python slim/qat_export.py --config "$QAT_CFG" --model_path "$OUT/qat/best_model/model.pdparams" \
    --save_dir "$OUT/int8_fast_infer" --input_shape $SHAPE --argmax_before_resize
echo "== 5/6 FP32 against INT8: dygraph and Paddle Inference (oneDNN), side by side"
rm -f "$OUT/compare/results.md"
python tools/compare_int8.py --config "$QAT_CFG" --fp32_model "$OUT/fp32/best_model/model.pdparams" \
    --model_path "$OUT/qat/best_model/model.pdparams" --save_dir "$OUT/compare" \
    --input_shape 1 3 96 128 --cpu_threads "$OMP_NUM_THREADS" \
    --result_json "$OUT/compare/results.json" --out "$OUT/compare/results.md" \
    --title "Built-in default: BiSeNetV2 on SyntheticScenes, FP32 against QAT INT8"
echo "== 6/6 FP32 against INT8 across backends, beside peer post-training INT8"
python deploy/python/benchmark.py --config "$QAT_CFG" --fp32_dir "$OUT/fp32_infer" "$OUT/fp32_fast_infer" \
    --int8_dir "$OUT/int8_infer" "$OUT/int8_fast_infer" --name demo \
    --save_dir "$OUT/benchmark_work" --out_dir "$OUT/benchmark" \
    --cpu_threads "$OMP_NUM_THREADS" --calib_images 16
