"""The layer every other one imports, importing neither torch nor rclpy: the model contract (cards and ONNX
metadata), camera geometry (intrinsics, letterbox, canonical <-> metric depth), image decoding, frame sources,
the options of each task kind and the progress output of long commands."""
