#!/usr/bin/env bash
# The main job on the built-in default, end to end: FP32 training on the procedural
# SyntheticScenes dataset -> evaluation -> export -> Paddle Inference (oneDNN) evaluation.
# Writes everything under output/demo. Needs nothing but Python 3.11 and the registry.
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
CFG=configs/demo/bisenetv2_synthetic_96x128_300.yml
OUT=output/demo
echo "== OMP_NUM_THREADS=$OMP_NUM_THREADS"
echo "== 1/4 FP32 training"
python train.py --config "$CFG" --save_dir "$OUT/fp32" --do_eval --save_interval 100 --log_iters 25
echo "== 2/4 evaluation of the best checkpoint"
python val.py --config "$CFG" --model_path "$OUT/fp32/best_model/model.pdparams" \
    --result_json "$OUT/fp32/val.json"
echo "== 3/4 export to a Paddle Inference model"
python export.py --config "$CFG" --model_path "$OUT/fp32/best_model/model.pdparams" \
    --save_dir "$OUT/fp32_infer"
echo "== 4/4 evaluation through Paddle Inference (oneDNN FP32)"
python deploy/python/eval_deployed.py --config "$CFG" --model_dir "$OUT/fp32_infer" \
    --result_json "$OUT/fp32_infer/val.json"
