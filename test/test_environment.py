"""The environment works across processes: real rclpy, real Fast DDS, real vision_msgs.

A separate process publishes a real 1280x720 frame and a Detection2DArray; this process receives both with
the right content. A publisher in another ROS domain is not heard. Our vision_msgs carry upstream's type
hashes, so they interoperate with nodes built against ROS 2's own vision_msgs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

from conftest import SAMPLES, spin_until, wait_for_publishers
from hydranet_ros.ros.convert import image_to_numpy

TALKER = Path(__file__).parent / "procs" / "talker.py"
FRAME = SAMPLES / "project_video_0750.jpg"
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)

# RIHS01 type hashes of upstream vision_msgs 4.1 (the rosidl type-description output of a colcon build of
# ros-perception/vision_msgs) and of Jazzy's tf2_msgs/TFMessage (what `ros2 topic info -v /tf` shows on a Jazzy
# system). Equal hashes mean our definitions are wire- and graph-compatible with theirs.
UPSTREAM_HASHES = {
    "vision_msgs/msg/Detection2DArray": "RIHS01_214274120007f4a683866481336b70310268cfa107aebe9d594a6acf75bda968",
    "vision_msgs/msg/LabelInfo": "RIHS01_3d37df4015cdf660cc851c51897f2acd957e1ca6205ba0a99aebffb9406b0783",
    "vision_msgs/msg/Detection3D": "RIHS01_ddd703be132ab0b69d33121f1bb034132bfbb3b0ac5f9fb1516005ba1c8a265b",
    "vision_msgs/msg/VisionClass": "RIHS01_1e4a11f0fed50b5623cb8ff26ca0e37952a48a9c074d16f804b44e9164c2037a",
    "vision_msgs/msg/BoundingBox3D": "RIHS01_bbb73a65c163d7f9bb29009c7bde9f7faa576bd2d23299c4511d19230dab4698",
    "vision_msgs/msg/ObjectHypothesis": "RIHS01_51da43cec11c01957a64d1e05a24acd18aae7745ec30b74348ad5f6d634f7f90",
    "vision_msgs/msg/ObjectHypothesisWithPose":
        "RIHS01_41c12344c0396c48b81df12467c192d99b2a0eb1463c5c37194e4223251c80bc",
    "tf2_msgs/msg/TFMessage": "RIHS01_e369d0f05a23ae52508854b66f6aa0437f3449d652e8cbf22d5abe85d020f087",
}


def test_image_and_detections_cross_process_and_domain_isolation(ros, rclpy_node):
    node = rclpy_node
    images: list[Image] = []
    dets: list[Detection2DArray] = []
    node.create_subscription(Image, "/camera/front/image_raw", images.append, RELIABLE)
    node.create_subscription(Detection2DArray, "/detections", dets.append, RELIABLE)

    same = ros.start_python(TALKER, str(FRAME), "same", name="talker_same")
    other = ros.start_python(TALKER, str(FRAME), "other", name="talker_other", domain_id=ros.other_domain_id)
    wait_for_publishers(node, "/camera/front/image_raw")
    wait_for_publishers(node, "/detections")
    spin_until(node, lambda: len(images) >= 5 and len(dets) >= 5, 20.0, "5 images and 5 detection arrays")
    assert same.alive() and other.alive(), same.output() + other.output()
    # The other talker has been publishing all along, in its own domain: nothing of it may arrive.
    spin_until(node, lambda: "talker other up" in other.output(), 10.0, "the other-domain talker")
    n = len(images)
    spin_until(node, lambda: len(images) >= n + 5, 10.0, "5 more images")

    tags = {m.header.frame_id.split(":")[0] for m in images + dets}
    assert tags == {"same"}, f"heard {tags}; the talker in domain {ros.other_domain_id} must not be heard"
    assert node.count_publishers("/camera/front/image_raw") == 1

    expected = cv2.cvtColor(cv2.imread(str(FRAME)), cv2.COLOR_BGR2RGB)
    img = images[-1]
    assert (img.width, img.height, img.encoding, img.step) == (1280, 720, "rgb8", 1280 * 3)
    np.testing.assert_array_equal(image_to_numpy(img), expected)

    d = dets[-1]
    assert len(d.detections) == 2
    car, ped = d.detections
    assert (car.bbox.center.position.x, car.bbox.center.position.y, car.bbox.size_x, car.bbox.size_y) == (
        640.5, 400.25, 120.0, 80.0)
    assert (car.results[0].hypothesis.class_id, car.results[0].hypothesis.score) == ("car", 0.91)
    assert (ped.results[0].hypothesis.class_id, ped.id) == ("pedestrian", "det1")
    assert car.header.frame_id == d.header.frame_id and d.header.stamp.sec > 0
    # An image and its detections were sent with one header: they pair up by it.
    assert {m.header.frame_id for m in dets} & {m.header.frame_id for m in images}


def test_our_interface_type_hashes_match_upstream(rclpy_node):
    """The hash each endpoint advertises in the graph (Jazzy type hashes) equals upstream vision_msgs' and
    tf2_msgs'."""
    import importlib

    node = rclpy_node
    pubs = {name: node.create_publisher(getattr(importlib.import_module(name.split("/")[0] + ".msg"),
                                                name.rsplit("/", 1)[1]), f"/hash_check/t{i}", 1)
            for i, name in enumerate(UPSTREAM_HASHES)}
    assert pubs
    for i, (name, expected) in enumerate(UPSTREAM_HASHES.items()):
        infos = node.get_publishers_info_by_topic(f"/hash_check/t{i}")
        assert len(infos) == 1
        assert infos[0].topic_type == name
        assert str(infos[0].topic_type_hash) == expected, name


@pytest.mark.parametrize("encoding", ["rgb8", "mono8"])
def test_publish_image_tool_reaches_a_subscriber(ros, rclpy_node, encoding):
    """`hydranet publish-image`, in its own process, delivers every frame it announces."""
    node = rclpy_node
    got: list[Image] = []
    node.create_subscription(Image, "/cam/image_raw", got.append, RELIABLE)
    proc = ros.start([sys.executable, "-m", "hydranet_ros.tools.cli", "publish-image", str(FRAME),
                      str(SAMPLES / "project_video_1050.jpg"), "--topic", "/cam/image_raw", "--encoding", encoding,
                      "--rate", "20", "--count", "4"], name="publish_image")
    spin_until(node, lambda: len(got) >= 4 or not proc.alive(), 20.0, "4 images from hydranet publish-image")
    spin_until(node, lambda: not proc.alive(), 10.0, "hydranet publish-image to exit")
    assert proc.proc.returncode == 0, proc.output()
    assert len(got) == 4, proc.output()
    assert all((m.width, m.height, m.encoding) == (1280, 720, encoding) for m in got)
    first, second = image_to_numpy(got[0]), image_to_numpy(got[1])
    assert not np.array_equal(first, second), "the two files must alternate"
