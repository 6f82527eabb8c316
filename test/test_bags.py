"""hydranet_ros.bags.rosbag: the typestore that writes our outputs into bags, and opening bags with clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from hydranet_ros.bags.rosbag import BagError, definition_file, open_reader, storage_of, typestore

# Every type the node publishes: a bag must describe each with the hash that live Jazzy nodes advertise.
NODE_TYPES = ["sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/PointCloud2",
              "vision_msgs/msg/Detection2DArray", "vision_msgs/msg/Detection3DArray", "vision_msgs/msg/LabelInfo",
              "visualization_msgs/msg/MarkerArray", "diagnostic_msgs/msg/DiagnosticArray"]


def installed_hash(msgtype: str) -> str:
    """RIHS01 hash from the type description JSON that rosidl installs beside the .msg (what rclpy advertises)."""
    pkg, _, name = msgtype.split("/")
    data = json.loads((Path(sys.prefix) / "share" / pkg / "msg" / f"{name}.json").read_text())
    return next(h["hash_string"] for h in data["type_hashes"] if h["type_name"] == msgtype)


@pytest.mark.parametrize("msgtype", NODE_TYPES)
def test_typestore_hashes_equal_the_installed_type_descriptions(msgtype):
    store = typestore([msgtype])
    assert store.hash_rihs01(msgtype) == installed_hash(msgtype)


def test_vision_msgs_come_from_the_installed_definitions_with_their_dependencies():
    store = typestore(["vision_msgs/msg/Detection3DArray"])
    # Registered transitively: Detection3D -> BoundingBox3D, ObjectHypothesisWithPose -> ObjectHypothesis.
    for name in ("Detection3D", "BoundingBox3D", "ObjectHypothesisWithPose", "ObjectHypothesis"):
        assert f"vision_msgs/msg/{name}" in store.fielddefs
    msg = store.types["vision_msgs/msg/ObjectHypothesis"](class_id="vehicle", score=0.5)
    assert store.deserialize_cdr(store.serialize_cdr(msg, "vision_msgs/msg/ObjectHypothesis"),
                                 "vision_msgs/msg/ObjectHypothesis").class_id == "vehicle"


def test_an_unknown_type_is_a_clear_error():
    assert definition_file("no_such_msgs/msg/Thing") is None
    with pytest.raises(BagError, match=r"no definition of no_such_msgs/msg/Thing: looked for "
                                       r"share/no_such_msgs/msg/Thing.msg"):
        typestore(["no_such_msgs/msg/Thing"])


def test_opening_something_that_is_not_a_bag_says_so(tmp_path):
    with pytest.raises(BagError, match="no bag at"):
        open_reader(tmp_path / "missing")
    with pytest.raises(BagError, match="without metadata.yaml"):
        open_reader(tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 99}\n")
    with pytest.raises(BagError, match="cannot read bag"):
        open_reader(tmp_path / "broken")


def test_a_written_mcap_bag_reads_back_in_a_with_block(tmp_path):
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore(["vision_msgs/msg/LabelInfo"])
    cls = store.types["vision_msgs/msg/LabelInfo"]
    vc = store.types["vision_msgs/msg/VisionClass"]
    header = store.types["std_msgs/msg/Header"](stamp=store.types["builtin_interfaces/msg/Time"](sec=5, nanosec=7),
                                                frame_id="cam")
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conn = writer.add_connection("/labels", "vision_msgs/msg/LabelInfo", typestore=store)
        msg = cls(header=header, class_map=[vc(class_id=0, class_name="vehicle")], threshold=0.35)
        writer.write(conn, 5_000_000_007, store.serialize_cdr(msg, "vision_msgs/msg/LabelInfo"))
    assert storage_of(bag) == "mcap"
    with open_reader(bag) as reader:
        (c, t, raw), = list(reader.messages())
        back = reader.deserialize(raw, c.msgtype)
    assert t == 5_000_000_007 and back.class_map[0].class_name == "vehicle" and back.header.frame_id == "cam"
