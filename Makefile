# The two commands of the README; each sets up the environment first (idempotent, quick when done).
VENV ?= .venv

.PHONY: setup demo test lint
setup:
	@bash pip_env/setup.sh $(VENV)

demo: setup
	$(VENV)/bin/hydranet demo

lint: setup
	$(VENV)/bin/ruff check .

# pytest exits 5 when it collects no test: make then fails, so an empty run can never pass.
test: lint
	$(VENV)/bin/python -m pytest

# The default model (models/hydranet_effl0_road.onnx) from ../shared/assets: import, hold out, de-duplicate,
# pseudo-label, train (config/train/hydranet_effl0_road.yaml; ~40 min on a 2-core CPU), then measure it on the
# held-out frames and record the numbers in its card. Every step is a `hydranet` command you can run alone.
ASSETS ?= ../shared/assets
DATA := runs/default/data
H := $(VENV)/bin/hydranet
MODEL := models/hydranet_effl0_road.onnx

.PHONY: default-model-data default-model
default-model-data: setup
	$(H) import sim $(ASSETS)/sim -o $(DATA)/sim.jsonl --val-fraction 0.1
	$(H) import kitti $(ASSETS)/kitti -o $(DATA)/kitti.jsonl
	$(H) import frames $(ASSETS)/images/bdd100k -o $(DATA)/bdd.jsonl --source bdd100k
	$(H) import frames $(ASSETS)/udacity/test_images -o $(DATA)/udacity_test_images.jsonl --source udacity
	$(H) import frames $(ASSETS)/udacity/stills -o $(DATA)/udacity_stills.jsonl --source udacity \
		--intrinsics $(ASSETS)/udacity/camera_intrinsics.json
	for v in solidWhiteRight test_small1 test_small2 test_video; do \
		$(H) import frames $(ASSETS)/udacity/videos/$$v.mp4 --every 3 -o $(DATA)/video_$$v.jsonl \
			--source udacity_$$v || exit 1; done
	# Held out for the card: every other BDD100K frame and the Udacity test images (KITTI is never trained on).
	$(H) manifest split $(DATA)/bdd.jsonl --every 2 --offset 1 -o $(DATA)/bdd_train.jsonl --held-out $(DATA)/bdd_heldout.jsonl
	$(H) manifest merge $(DATA)/bdd_heldout.jsonl $(DATA)/udacity_test_images.jsonl -o $(DATA)/real_heldout_raw.jsonl
	$(H) manifest merge $(DATA)/bdd_train.jsonl $(DATA)/udacity_stills.jsonl $(DATA)/video_*.jsonl \
		-o $(DATA)/real_train_all.jsonl
	# The test images were cut from the same drives as the videos and stills: drop their near-copies.
	$(H) manifest dedupe $(DATA)/real_train_all.jsonl --against $(DATA)/real_heldout_raw.jsonl \
		-o $(DATA)/real_train_raw.jsonl
	$(H) pseudo-label $(DATA)/real_heldout_raw.jsonl -o $(DATA)/pseudo_heldout
	$(H) pseudo-label $(DATA)/real_train_raw.jsonl -o $(DATA)/pseudo_train

default-model: default-model-data
	$(H) train config/train/hydranet_effl0_road.yaml
	$(H) eval $(MODEL) $(DATA)/pseudo_heldout/manifest.jsonl --card-key held_out_real_vs_teachers
	$(H) eval $(MODEL) $(DATA)/kitti.jsonl --card-key kitti_lidar_depth_and_boxes
	$(H) eval $(MODEL) $(DATA)/sim_val.jsonl --card-key sim_val
	$(VENV)/bin/python bench/teachers_vs_hydranet.py --model $(MODEL) --card-key inference_vs_teachers
