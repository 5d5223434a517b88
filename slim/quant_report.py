"""Per-layer quantization debug report: a QAT checkpoint or a PTQ/QAT export against its FP32
original on N val images (layers.csv, quant_params.csv, samples.csv, report.md, cosine.png):
python slim/quant_report.py --config C --fp32_model FP32.pdparams \
    (--model_path QAT.pdparams | --model_dir PTQ_OR_QAT_EXPORT) --save_dir out/report \
    [--num_images 32] [--profile [paddle] [onnxruntime] [openvino]]"""
from segq.cli import build_parser, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ("analysis",))
    p.add_argument("--save_dir", default="output/quant_report", help="where the report goes")
    p.add_argument("--num_images", type=int, default=32, help="val images to compare on")
    p.add_argument("--profile", nargs="*", default=None, metavar="RUNTIME",
                   choices=("paddle", "onnxruntime", "openvino"),
                   help="also time both models per op type and list the ops slower in INT8, "
                        "under Paddle Inference oneDNN (the flag alone) or the runtimes named "
                        "(paddle onnxruntime openvino)")
    args = p.parse_args(argv)
    from segq.config import load_config
    from segq.quant.analysis.report import quant_report

    r = quant_report(load_config(args.config, args.opts), args.fp32_model, args.save_dir,
                     qat_weights=args.model_path, model_dir=args.model_dir,
                     num_images=args.num_images,
                     profile=["paddle"] if args.profile == [] else args.profile or (),
                     cpu_threads=args.cpu_threads)
    print(f"mIoU on {len(r.samples)} images: FP32 {r.miou_fp32:.4f}, INT8 {r.miou_int8:.4f} "
          f"(fake-quant program), {r.miou_deployed:.4f} (deployed, oneDNN INT8); output cosine "
          f"{r.output_cosine:.5f}; report in {r.save_dir}/report.md")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
