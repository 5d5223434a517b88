#!/usr/bin/env bash
# The deployment benchmark of the CamVid networks trained by the commands in docs/results.md:
# for each, the FP32 and QAT exports at 360x480, the QAT one also with the arg max taken early
# (at half the input size, and at the logits' own resolution), segq's abs_max PTQ of the FP32
# model (64 train images), then deploy/python/benchmark.py, whose tables land in docs/benchmark/.
#   bash scripts/benchmark_camvid.sh [bisenetv2] [pp_liteseg_t] [deeplabv3p_r18]   (default: all)
# Expects output/<name>_camvid/best_model (FP32) and output/<name>_camvid_qat/best_model (QAT).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
declare -A FP32_CFG=(
  [bisenetv2]=configs/bisenetv2/bisenetv2_camvid_360x480_2400.yml
  [pp_liteseg_t]=configs/pp_liteseg/pp_liteseg_stdc1_camvid_360x480_2400.yml
  [deeplabv3p_r18]=configs/deeplabv3p/deeplabv3p_resnet18_vd_os16_camvid_360x480_1600.yml)
declare -A QAT_CFG=(
  [bisenetv2]=configs/quant/bisenetv2_camvid_360x480_qat600.yml
  [pp_liteseg_t]=configs/quant/pp_liteseg_stdc1_camvid_360x480_qat600.yml
  [deeplabv3p_r18]=configs/quant/deeplabv3p_resnet18_vd_os16_camvid_360x480_qat600.yml)
SHAPE="-1 3 360 480"
nets=("$@")
[ ${#nets[@]} -gt 0 ] || nets=(bisenetv2 pp_liteseg_t deeplabv3p_r18)
for net in "${nets[@]}"; do
  run=output/${net}_camvid
  out=output/benchmark/$net
  echo "== $net: exports"
  python export.py --config "${FP32_CFG[$net]}" --model_path "$run/best_model/model.pdparams" \
      --save_dir "$out/fp32" --input_shape $SHAPE
  python slim/qat_export.py --config "${QAT_CFG[$net]}" \
      --model_path "${run}_qat/best_model/model.pdparams" --save_dir "$out/int8" --input_shape $SHAPE
  python slim/qat_export.py --config "${QAT_CFG[$net]}" \
      --model_path "${run}_qat/best_model/model.pdparams" --save_dir "$out/int8_half" \
      --input_shape $SHAPE --argmax_before_resize 0.5
  python slim/qat_export.py --config "${QAT_CFG[$net]}" \
      --model_path "${run}_qat/best_model/model.pdparams" --save_dir "$out/int8_fast" \
      --input_shape $SHAPE --argmax_before_resize
  # every export here is redone from the checkpoints above; slim/ptq.py refuses to write
  # into a non-empty directory, so the previous PTQ export goes first
  rm -rf "$out/ptq"
  python slim/ptq.py --config "${FP32_CFG[$net]}" --model_path "$run/best_model/model.pdparams" \
      --save_dir "$out/ptq" --algo abs_max --calib_num 64 --input_shape $SHAPE
  echo "== $net: benchmark ($OMP_NUM_THREADS threads)"
  python deploy/python/benchmark.py --config "${QAT_CFG[$net]}" \
      --fp32_dir "$out/fp32" --int8_dir "$out/int8" "$out/int8_half" "$out/int8_fast" "$out/ptq" \
      --name "${net}_camvid" --save_dir "$out/work" --out_dir docs/benchmark \
      --cpu_threads "$OMP_NUM_THREADS" --num_workers 2
done
