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
# pseudo-label, train (config/train/hydranet_effl0_road.yaml; ~90 min on a 2-core CPU), then measure it on the
# held-out frames (bench/quality.py) and record the numbers in its card. Every step is a `hydranet` command you can run alone.
ASSETS ?= ../shared/assets
DATA := runs/default/data
H := $(VENV)/bin/hydranet
MODEL := models/hydranet_effl0_road.onnx

.PHONY: quality-data quality default-model-data default-model
# Teacher score bands per class, measured on kitti101 train by bench/teacher_thresholds.py (PicoDet-S: precision
# >= 0.8 from the threshold, >= 0.3 from the low threshold). Its cyclist boxes are right one time in five at best,
# so every one is a don't-care region: cyclists are learnt from real labels only.
CLASS_BANDS := vehicle=0.5:0.25,pedestrian=0.55:0.35,cyclist=1:0.25
PSEUDO := $(H) pseudo-label --class-thresholds $(CLASS_BANDS)
# The held-out data of the quality report (bench/quality.py): kitti101 val, the synthetic val set, real frames held
# out by condition with teacher labels. Never trained on: importer and split mark them, and the trainer refuses them.
quality-data: setup
	$(H) import sim $(ASSETS)/sim -o $(DATA)/sim.jsonl --val-fraction 0.1
	$(H) import kitti $(ASSETS)/kitti101 --split val -o $(DATA)/kitti101_val.jsonl
	$(H) import frames $(ASSETS)/images/bdd100k -o $(DATA)/bdd.jsonl --source bdd100k
	$(H) import frames $(ASSETS)/real_misc/frames -o $(DATA)/real_misc.jsonl --source real_misc
	$(H) import frames $(ASSETS)/real_misc/radiate_fog -o $(DATA)/fog.jsonl --source radiate_fog
	$(H) import frames $(ASSETS)/udacity/test_images -o $(DATA)/udacity_test_images.jsonl --source udacity
	$(H) manifest merge $(DATA)/bdd.jsonl $(DATA)/real_misc.jsonl $(DATA)/fog.jsonl \
		$(DATA)/udacity_test_images.jsonl -o $(DATA)/real_all.jsonl
	$(H) manifest split $(DATA)/real_all.jsonl --list config/data/real_heldout.yaml \
		-o $(DATA)/real_split_train.jsonl --held-out $(DATA)/real_heldout_raw.jsonl
	$(PSEUDO) $(DATA)/real_heldout_raw.jsonl -o $(DATA)/pseudo_heldout

# The quality report of MODEL (default: the shipped one) on every held-out set; QUALITY_FLAGS=--card records it.
quality: quality-data
	$(VENV)/bin/python bench/quality.py $(MODEL) $(QUALITY_FLAGS)

default-model-data: quality-data
	# kitti101 train: real boxes and LiDAR depth, plus TwinLiteNet drivable area and lanes.
	$(H) import kitti $(ASSETS)/kitti101 --split train -o $(DATA)/kitti101_train_raw.jsonl
	$(PSEUDO) $(DATA)/kitti101_train_raw.jsonl -o $(DATA)/kitti101_train --tasks drivable_area,lane_lines
	# Real frames without labels: the ones quality-data did not hold out, Udacity stills and videos.
	$(H) import frames $(ASSETS)/udacity/stills -o $(DATA)/udacity_stills.jsonl --source udacity \
		--intrinsics $(ASSETS)/udacity/camera_intrinsics.json
	for v in solidWhiteRight test_small1 test_small2 test_video; do \
		$(H) import frames $(ASSETS)/udacity/videos/$$v.mp4 --every 3 -o $(DATA)/video_$$v.jsonl \
			--source udacity_$$v || exit 1; done
	$(H) manifest merge $(DATA)/real_split_train.jsonl $(DATA)/udacity_stills.jsonl $(DATA)/video_*.jsonl \
		-o $(DATA)/real_train_all.jsonl
	# Video frames, stills and the fog sequence hold near-copies of held-out frames: drop them.
	$(H) manifest dedupe $(DATA)/real_train_all.jsonl --against $(DATA)/real_heldout_raw.jsonl \
		-o $(DATA)/real_train_raw.jsonl
	$(PSEUDO) $(DATA)/real_train_raw.jsonl -o $(DATA)/pseudo_train

default-model: default-model-data
	$(H) train config/train/hydranet_effl0_road.yaml
	$(VENV)/bin/python bench/quality.py $(MODEL) --card
	$(VENV)/bin/python bench/teachers_vs_hydranet.py --model $(MODEL) --card-key inference_vs_teachers
