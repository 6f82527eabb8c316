"""`hydranet`: one command, one verb per tool. `hydranet --help` lists them; each has its own --help.

Each verb lives in its own module under hydranet_ros/tools/ with `add_arguments(parser)` and `run(args)`;
this file only wires them up, and imports a verb's module only when that verb runs, so `hydranet --help`
stays fast and a verb's heavy imports (torch, rclpy) cost nothing to the others.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# verb -> (module, one-line help). Keep in the order a user meets them.
VERBS: dict[str, tuple[str, str]] = {
    "demo": ("hydranet_ros.tools.demo",
             "replay a real drive through the node, record its outputs and render a visual report"),
    "export": ("hydranet_ros.tools.export", "export a model spec (+ weights) to one fused ONNX graph and its card"),
    "quantize": ("hydranet_ros.tools.quantize",
                 "the int8 form of an exported model for the CPU, calibrated on real frames, and its card"),
    "build-engine": ("hydranet_ros.tools.build_engine",
                     "build the TensorRT engine of a model for this GPU, once, into the engine cache"),
    "import": ("hydranet_ros.tools.import_data",
               "make a dataset manifest from sim, KITTI, BDD100K, or raw frames (folder, video, bag)"),
    "pseudo-label": ("hydranet_ros.tools.pseudo_label",
                     "label raw frames with teacher models (drivable area, lane lines, detections)"),
    "manifest": ("hydranet_ros.tools.manifest_tool", "stats, merge, split and de-duplicate dataset manifests"),
    "train": ("hydranet_ros.tools.train", "train a HydraNet from dataset manifests (checkpoints, logs, plots, export)"),
    "eval": ("hydranet_ros.tools.eval", "accuracy of a model on labelled manifests (mIoU, depth errors, AP, recall)"),
    "task-affinity": ("hydranet_ros.tools.task_affinity",
                      "train tasks alone and in pairs: which heads help each other share a backbone"),
    "info": ("hydranet_ros.tools.info", "parameters per part, GFLOPs, inputs and outputs of a spec or ONNX model"),
    "replay": ("hydranet_ros.tools.replay",
               "publish a rosbag2 recording (MCAP or sqlite3) with its timing, QoS and /clock"),
    "record": ("hydranet_ros.tools.record", "record topics into an MCAP bag, losslessly, until Ctrl-C"),
    "visualize": ("hydranet_ros.tools.visualize",
                  "render a bag of the node's outputs as a video, a contact sheet and a latency summary"),
    "publish-image": ("hydranet_ros.tools.publish_image", "publish image files as a camera topic"),
    "make-bag": ("hydranet_ros.tools.make_bag",
                 "write a video or an image folder as a rosbag2 camera recording (Image/CompressedImage + CameraInfo)"),
    "params": ("hydranet_ros.tools.params", "show the node's parameters (table, markdown) or check a params file"),
    "env": ("hydranet_ros.tools.env", "show what this environment provides (ROS, torch, engines, GPU)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hydranet",
        description="hydranet_ros: one-pass multi-task camera perception for ROS 2.",
        epilog="Run 'hydranet VERB --help' for a verb's options. The node itself is 'hydranet_node'.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (module, help_text) in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # A verb's arguments are declared in its module; import only the light part (argparse).
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`hydranet info ... | head`): stop quietly, as command-line tools do. Point stdout
        # at /dev/null so that Python's flush at exit does not raise a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
