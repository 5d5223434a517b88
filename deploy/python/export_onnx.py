"""Convert an export (export.py / slim/qat_export.py / slim/ptq.py, with a fixed H and W) to
ONNX for the ONNX Runtime and OpenVINO backends: writes MODEL_DIR/model.onnx and names it in
deploy.yaml. An INT8 export is laid out for ONNX Runtime's integer kernels, which needs a
few calibration images for the conv outputs Paddle left unquantized (default: 8 from the
train split of the export's config); --int8_layout paddle keeps Paddle's QDQ graph.
python deploy/python/export_onnx.py --model_dir D [--opset 13]
    [--int8_layout onnxruntime|paddle] [--calib_dir DIR | --calib_list LIST] [--calib_num 8]"""
import argparse

from segq.cli import run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    # no --config: the export directory carries everything (deploy.yaml, config.yml)
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, help="directory written by an export")
    p.add_argument("--opset", type=int, default=13)
    p.add_argument("--int8_layout", choices=("onnxruntime", "paddle"), default="onnxruntime")
    p.add_argument("--calib_dir", default=None)
    p.add_argument("--calib_list", default=None)
    p.add_argument("--calib_num", type=int, default=8)
    args = p.parse_args(argv)
    from segq.deploy.deploy_file import load_deploy_info
    from segq.deploy.onnx_export import export_onnx
    from segq.quant.calibration import CalibrationSource, export_calibration_batches

    batches = None
    if args.int8_layout == "onnxruntime" and load_deploy_info(args.model_dir, require_onnx=False).is_int8:
        batches = export_calibration_batches(args.model_dir, CalibrationSource(
            args.calib_dir, args.calib_list, args.calib_num))
    print(f"[ONNX] wrote {export_onnx(args.model_dir, args.opset, batches)}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
