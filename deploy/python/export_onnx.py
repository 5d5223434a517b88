"""Convert an export (export.py / slim/qat_export.py, with a fixed H and W) to ONNX for the
ONNX Runtime and OpenVINO backends: writes MODEL_DIR/model.onnx and names it in deploy.yaml.
python deploy/python/export_onnx.py --model_dir D [--opset 13]"""
import argparse

from segq.cli import run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    # no --config: the export directory carries everything (deploy.yaml)
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", required=True, help="directory written by an export")
    p.add_argument("--opset", type=int, default=13)
    args = p.parse_args(argv)
    from segq.deploy.onnx_export import export_onnx

    print(f"[ONNX] wrote {export_onnx(args.model_dir, args.opset)}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
