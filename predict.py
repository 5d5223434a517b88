"""Predict masks with a dygraph model: writes <name>_mask.png (palette PNG) and
<name>_overlay.png per image, as deploy/python/infer.py does; a folder is searched with its
sub-folders, whose layout is mirrored under --save_dir.
python predict.py --config C --model_path P --image_path IMG_OR_DIR --save_dir D [--skip_bad]"""
from segq.cli import build_parser, config_opts, run_cli, set_default_threads

set_default_threads()


def main(argv=None):
    p = build_parser(__doc__, ("predict",))
    p.add_argument("--skip_bad", action="store_true",
                   help="skip images that cannot be read and list them at the end (default: "
                        "stop at the first one)")
    args = p.parse_args(argv)
    import sys

    from segq.config import load_config
    from segq.deploy.images import list_images, summary_lines, write_predictions
    from segq.deploy.workflows import dygraph_predict_files

    cfg = load_config(args.config, config_opts(args))
    images = list_images(args.image_path, exclude=args.save_dir)
    predict_files = dygraph_predict_files(cfg, args.model_path)
    report = write_predictions(predict_files, images, args.save_dir, args.skip_bad)
    out, err = summary_lines(report)
    for line in out:
        print(f"[PREDICT] {line}")
    for line in err:
        print(f"warning: {line}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
