"""Predict masks with an exported model (as PaddleSeg's deploy/python/infer.py): writes
<name>_mask.png (palette PNG) and <name>_overlay.png per image; a folder is searched with its
sub-folders, whose layout is mirrored under --save_dir.
python deploy/python/infer.py --config EXPORT_DIR/deploy.yaml --image_path IMG_OR_DIR
    [--save_dir D] [--device cpu|gpu] [--backend paddle|onnxruntime|openvino]
    [--precision fp32|fp16|int8] [--cpu_threads N] [--skip_bad]
    [--batch_size N] [--trt_shape_file F] [--min_subgraph_size N]"""
import argparse

from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def parse_args(argv=None) -> argparse.Namespace:
    # --config is the export's deploy.yaml here (as in PaddleSeg), not a segq config
    p = build_parser(__doc__, (), config=False)
    p.add_argument("--config", required=True, help="the export's deploy.yaml (or its directory)")
    p.add_argument("--image_path", required=True, help="an image or a directory of images")
    p.add_argument("--save_dir", default="output/result")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--backend", choices=("paddle", "onnxruntime", "openvino"), default="paddle",
                   help="onnxruntime/openvino run the export's ONNX model "
                        "(deploy/python/export_onnx.py)")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    p.add_argument("--cpu_threads", type=int, default=2)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--trt_shape_file", default=None,
                   help="gpu: TensorRT shape ranges, collected on the first run and reused")
    p.add_argument("--min_subgraph_size", type=int, default=3,
                   help="gpu: the fewest ops a TensorRT subgraph needs")
    p.add_argument("--skip_bad", action="store_true",
                   help="skip images that cannot be read and list them at the end (default: "
                        "stop at the first one)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import sys

    from segq.deploy import Predictor, PredictorOptions
    from segq.deploy.images import list_images, summary_lines, write_predictions

    options = PredictorOptions(device=args.device, backend=args.backend,
                               precision=args.precision,
                               cpu_threads=args.cpu_threads, batch_size=args.batch_size,
                               trt_shape_file=args.trt_shape_file,
                               min_subgraph_size=args.min_subgraph_size)
    images = list_images(args.image_path, exclude=args.save_dir)
    predictor = Predictor(args.config, options)
    report = write_predictions(predictor.predict_files, images, args.save_dir, args.skip_bad)
    out, err = summary_lines(report)
    print(f"[INFER] {args.backend} {args.device} {args.precision}: {out[0]}")
    for line in out[1:]:
        print(f"[INFER] {line}")
    for line in err:
        print(f"warning: {line}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
