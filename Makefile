# dso_nas — `make search` runs the embedded default end to end; `make test` runs the tests.
# Both create .venv and install the pinned requirements on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
GPU ?= 0
PY := $(VENV)/bin/python
DSO := $(VENV)/bin/dso-nas
REQ := $(if $(filter 1,$(GPU)),requirements-gpu.txt,requirements.txt)
STAMP := $(VENV)/.installed-$(if $(filter 1,$(GPU)),gpu,cpu)
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist
ARGS ?=
CIFAR_ROOT ?=
IMAGENET_ROOT ?=
CONFIG ?=
SCOPE ?= full
# ImageNet's default scope is share (the paper's best row); SCOPE=full on the command line wins.
IMAGENET_SCOPE := $(if $(filter command line environment,$(origin SCOPE)),$(SCOPE),share)
FMNIST_REC ?= runs/imagenet_fmnist/rec
ARCH ?=
RUN ?=

.PHONY: install check-cuda-wheels data search search-check study test compare compare-check bench bench-methods bench-data cifar-search cifar-retrain imagenet-search imagenet-retrain imagenet-fmnist mobile-search mobile-retrain mobile-micro darts-search darts-retrain darts-micro voc-search voc-retrain voc-fmnist voc-micro dist-micro architecture clean help

help:
	@echo "make search        embedded default (Fashion-MNIST): pre-train, search, derive, retrain, evaluate, report"
	@echo "make test          run the test suite"
	@echo "make install GPU=1 install the CUDA 11.2 build (mxnet-cu112 and the CUDA libraries it links) instead of the CPU one"
	@echo "make check-cuda-wheels  check that the pinned CUDA wheels provide every library mxnet-cu112 links (~2.3 GB download; docs/gpu.md)"
	@echo "make cifar-search CIFAR_ROOT=DIR SCOPE=share|full   paper CIFAR-10 search"
	@echo "make cifar-retrain CIFAR_ROOT=DIR ARCH=FILE          paper CIFAR-10 retraining"
	@echo "make imagenet-search IMAGENET_ROOT=DIR [SCOPE=share|full]  paper ImageNet search (RecordIO)"
	@echo "make imagenet-retrain IMAGENET_ROOT=DIR ARCH=FILE         paper ImageNet retraining (a CIFAR ARCH transfers)"
	@echo "make imagenet-fmnist  pack Fashion-MNIST as ImageNet RecordIO into $(FMNIST_REC) (CONFIG=experiments/imagenet/micro_*.yaml)"
	@echo "make mobile-search IMAGENET_ROOT=DIR TARGET=cpu|gpu   DSO-NAS on the ProxylessNAS space (Table 3)"
	@echo "make mobile-retrain IMAGENET_ROOT=DIR ARCH=FILE       retrain a mobile-space architecture"
	@echo "make mobile-micro  the mobile pipeline end to end on Fashion-MNIST RecordIO here (docs/mobile.md)"
	@echo "make darts-search CIFAR_ROOT=DIR                   DSO-NAS on the DARTS cell space at DARTS' search scale (GPU)"
	@echo "make darts-retrain CIFAR_ROOT=DIR ARCH=FILE         DARTS' CIFAR-10 recipe for a DARTS-space architecture (experiments/darts/reference/)"
	@echo "make darts-micro   the DARTS-space chain on Fashion-MNIST here (search, derive, retrain), then the reference genotypes"
	@echo "make install       create .venv with the pinned CPU requirements (GPU=1: mxnet-cu112)"
	@echo "make data          install Debian's dataset-fashion-mnist (as root)"
	@echo "make search-check  the planted check: real ops beside decoys over 3 seeds (dso-nas search-check)"
	@echo "make study         the paper's claims over 3 seeds on Fashion-MNIST (dso-nas study; docs/study.md)"
	@echo "make compare       DSO-NAS, NASP, DARTS and random cells like for like on the DARTS space (docs/compare.md)"
	@echo "make compare-check the planted decoy check of each search method on the DARTS space"
	@echo "make bench         search-step speed and memory (tools/bench_step.py; see BENCHMARKS.md)"
	@echo "make bench-methods each search method's architecture and weight step on the DARTS search network"
	@echo "make bench-data    ImageNet loader: decoded + augmented images/s at 224x224 (tools/bench_data.py)"
	@echo "make voc-search COCO_ROOT=DIR [IMAGENET_ROOT=DIR]      segmentation search under DeepLabv3 (Table 4)"
	@echo "make voc-retrain VOC_ROOT=DIR ARCH=FILE [COCO_ROOT=DIR] [IMAGENET_ROOT=DIR]  segmentation retraining stages"
	@echo "make voc-micro     the segmentation search and retraining on Fashion-MNIST items in VOC's layout (docs/segmentation.md)"
	@echo "make dist-micro    a 2-worker dist_sync micro search on loopback vs one process (docs/distributed.md)"
	@echo "make architecture  rewrite the layer picture and module list of docs/architecture.md from the tree"
	@echo "make clean         remove .venv and build litter"
	@echo "ARGS='key=value ...' adds config overrides to any run target"

# mxnet and mxnet-cu112 install the same mxnet/ folder: the other build is removed first.
OTHER_MXNET := $(if $(filter 1,$(GPU)),mxnet,mxnet-cu112)
$(STAMP): requirements.txt requirements-gpu.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip uninstall -q -y $(OTHER_MXNET) 2>/dev/null || true
	$(PY) -m pip install -q --disable-pip-version-check -r $(REQ) -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

install: $(STAMP)

# Every shared library libmxnet.so of the pinned mxnet-cu112 links must come from a pinned wheel
# (tools/check_cuda_wheels.py; the result is in docs/gpu.md). Downloads ~2.3 GB into CUDA_WHEELS;
# needs pip and the standard library only (the venv's Python when there is one).
CUDA_WHEELS ?= /tmp/dso_nas_cuda_wheels
check-cuda-wheels:
	$(if $(wildcard $(PY)),$(PY),$(PYTHON)) tools/check_cuda_wheels.py $(CUDA_WHEELS)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist; installed with apt when we are root.
data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist >/dev/null; } || \
	  echo "make: could not apt-get install dataset-fashion-mnist; set ARGS='data.root=DIR' to a folder with the four idx files"; \
	else echo "make: Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' or set ARGS='data.root=DIR'"; fi

search: install data
	$(DSO) run --config experiments/fashion_mnist/search.yaml $(ARGS)

# The planted check of the search (dso-nas search-check, docs/study.md): real ops beside decoys
# that read another sample; 3 seeds of the embedded default; rerun to continue. ARGS: KEY=VALUE.
search-check: install data
	$(DSO) search-check $(ARGS)

# STUDY=FILE runs another study (experiments/study/cifar_paper.yaml on GPUs); rerun to continue one.
STUDY ?= experiments/study/fashion_mnist.yaml
study: install data
	$(DSO) study $(STUDY) $(ARGS)

# DSO-NAS, NASP, DARTS and random cells like for like on the DARTS space (docs/compare.md); rerun to continue.
# One OpenMP thread unless OMP_NUM_THREADS is set: the micro networks' ops are too small for two
# (a DARTS search epoch took 52 s on one thread, 103 s on two; BENCHMARKS.md).
compare: install data
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(DSO) study experiments/study/darts_methods.yaml $(ARGS)

# The planted check (decoy ops) for each search method on the DARTS space; rerun to continue.
compare-check: install data
	for m in dso nasp darts; do OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(DSO) search-check --config experiments/darts/$$( [ $$m = dso ] && echo micro_search || echo micro_$$m ).yaml \
	  --real darts_sep_conv_3x3 darts_max_pool_3x3 --output-dir runs/compare_check/$$m $(ARGS) || exit 1; done

test: install data
	$(PY) -m pytest -q tests

# The generated parts of docs/architecture.md (tests/test_architecture_doc.py checks them).
architecture: install
	$(PY) tools/architecture.py

bench: install
	$(PY) tools/bench_step.py $(ARGS)

# Each search method's architecture and weight step on the DARTS search network (tools/bench_methods.py).
bench-methods: install
	$(PY) tools/bench_methods.py $(ARGS)

# The ImageNet loader's decode + augmentation rate (tools/bench_data.py; see BENCHMARKS.md).
bench-data: install data
	$(PY) tools/bench_data.py --make-root runs/bench_data $(ARGS)

cifar-search: install
	$(DSO) search --config experiments/cifar/search.yaml model.scope=$(SCOPE) $(if $(CIFAR_ROOT),data.root=$(CIFAR_ROOT)) $(ARGS)

cifar-retrain: install
	@test -n "$(ARCH)" || { echo "make: set ARCH=path/to/architecture.yaml"; exit 2; }
	$(DSO) retrain --config experiments/cifar/retrain.yaml --arch $(ARCH) $(if $(CIFAR_ROOT),data.root=$(CIFAR_ROOT)) $(ARGS)

# CONFIG=FILE replaces the experiment file (experiments/imagenet/micro_search.yaml here).
imagenet-search: install
	$(DSO) search --config $(or $(CONFIG),experiments/imagenet/search.yaml) model.scope=$(IMAGENET_SCOPE) \
	  $(if $(filter full,$(IMAGENET_SCOPE)),search.budget=flops) $(if $(IMAGENET_ROOT),data.root=$(IMAGENET_ROOT)) $(ARGS)

imagenet-retrain: install
	@test -n "$(ARCH)" || { echo "make: set ARCH=path/to/architecture.yaml"; exit 2; }
	$(DSO) retrain --config $(or $(CONFIG),experiments/imagenet/retrain.yaml) --arch $(ARCH) \
	  $(if $(IMAGENET_ROOT),data.root=$(IMAGENET_ROOT)) $(ARGS)

# Real Fashion-MNIST pixels in ImageNet's RecordIO layout (64×64 RGB JPEG): 12,000 train, 2,000 val.
imagenet-fmnist: install data
	$(PY) tools/fashion_mnist_folder.py $(dir $(FMNIST_REC))folder --train 12000 --val 2000 --force
	$(DSO) pack $(dir $(FMNIST_REC))folder $(FMNIST_REC) --resize 64 --force

# The mobile (ProxylessNAS) space: TARGET picks the CPU or the GPU network structure and latency device.
TARGET ?= cpu
mobile-search: install
	@case "$(TARGET)" in cpu|gpu) ;; *) echo "make: TARGET must be cpu or gpu, got '$(TARGET)'"; exit 2;; esac
	$(DSO) search --config $(or $(CONFIG),experiments/mobile/search_$(TARGET).yaml) \
	  $(if $(IMAGENET_ROOT),data.root=$(IMAGENET_ROOT)) $(ARGS)

mobile-retrain: install
	@test -n "$(ARCH)" || { echo "make: set ARCH=path/to/architecture.yaml"; exit 2; }
	$(DSO) retrain --config $(or $(CONFIG),experiments/mobile/retrain.yaml) --arch $(ARCH) \
	  $(if $(IMAGENET_ROOT),data.root=$(IMAGENET_ROOT)) $(ARGS)

# Latency table, search to one op per block, derive, retrain, export and Table 3 at micro scale.
MOBILE_RUN ?= runs/mobile_micro
mobile-micro: install data
	test -f $(FMNIST_REC)/train.rec || $(MAKE) imagenet-fmnist
	$(DSO) latency --config experiments/mobile/micro_search.yaml data.root=$(FMNIST_REC) $(ARGS)
	$(DSO) search --config experiments/mobile/micro_search.yaml data.root=$(FMNIST_REC) \
	  output_dir=$(MOBILE_RUN)/search $(ARGS)
	$(DSO) latency --config experiments/mobile/micro_search.yaml data.root=$(FMNIST_REC) \
	  --arch $(MOBILE_RUN)/search/architecture.yaml $(ARGS)
	$(DSO) retrain --config experiments/mobile/micro_retrain.yaml --arch $(MOBILE_RUN)/search/architecture.yaml \
	  data.root=$(FMNIST_REC) output_dir=$(MOBILE_RUN)/retrain $(ARGS)
	$(DSO) export --arch $(MOBILE_RUN)/search/architecture.yaml --config experiments/mobile/micro_retrain.yaml \
	  --checkpoint $(MOBILE_RUN)/retrain/retrain.ckpt --out $(MOBILE_RUN)/export data.root=$(FMNIST_REC)
	$(DSO) report $(MOBILE_RUN)/retrain

# The DARTS cell space (docs/darts.md): DSO-NAS's search at DARTS' scale, DARTS' retraining recipe.
darts-search: install
	$(DSO) search --config $(or $(CONFIG),experiments/darts/search.yaml) \
	  $(if $(CIFAR_ROOT),data.root=$(CIFAR_ROOT)) $(ARGS)

darts-retrain: install
	@test -n "$(ARCH)" || { echo "make: set ARCH=path/to/architecture.yaml (e.g. experiments/darts/reference/darts_v2.yaml)"; exit 2; }
	$(DSO) retrain --config $(or $(CONFIG),experiments/darts/retrain.yaml) --arch $(ARCH) \
	  $(if $(CIFAR_ROOT),data.root=$(CIFAR_ROOT)) $(ARGS)

# Search, derive, retrain, evaluate and report at micro scale on Fashion-MNIST, then the
# reference genotypes at DARTS' CIFAR-10 evaluation size (their parameter counts).
DARTS_RUN ?= runs/darts_micro
darts-micro: install data
	$(DSO) run --config experiments/darts/micro_search.yaml output_dir=$(DARTS_RUN) $(ARGS)
	for f in experiments/darts/reference/*.yaml; do $(DSO) info --arch $$f || exit 1; done

# PASCAL VOC (TPAMI §4.4). The ImageNet stages run when IMAGENET_ROOT is given; the retraining
# runs COCO+SBD+VOC (with COCO_ROOT), SBD+VOC (when VOC_ROOT holds VOCaug/), then VOC, each
# stage starting from the weights of the one before (train.init). ARGS go to the segmentation stages.
COCO_ROOT ?=
VOC_ROOT ?=
VOC_RUN ?= runs/voc
voc-search: install
	@test -n "$(COCO_ROOT)$(filter data.root=%,$(ARGS))" || { echo "make: set COCO_ROOT=DIR (annotations/, train2017/)"; exit 2; }
	$(if $(IMAGENET_ROOT),$(DSO) search --config experiments/voc/imagenet_pretrain.yaml data.root=$(IMAGENET_ROOT) \
	  output_dir=$(VOC_RUN)/imagenet_pretrain,@echo "voc-search: no IMAGENET_ROOT, searching without the ImageNet pre-training")
	$(DSO) search --config $(or $(CONFIG),experiments/voc/search.yaml) output_dir=$(VOC_RUN)/search \
	  $(if $(COCO_ROOT),data.root=$(COCO_ROOT)) $(if $(IMAGENET_ROOT),train.init=$(VOC_RUN)/imagenet_pretrain/search.ckpt) $(ARGS)

voc-retrain: install
	@test -n "$(ARCH)" || { echo "make: set ARCH=path/to/architecture.yaml"; exit 2; }
	@test -n "$(VOC_ROOT)" || { echo "make: set VOC_ROOT=DIR (the folder holding VOC2012/)"; exit 2; }
	set -e; init=""; \
	if [ -n "$(IMAGENET_ROOT)" ]; then $(DSO) retrain --config experiments/voc/imagenet_retrain.yaml --arch $(ARCH) \
	  data.root=$(IMAGENET_ROOT) output_dir=$(VOC_RUN)/retrain_imagenet; init=train.init=$(VOC_RUN)/retrain_imagenet/retrain.ckpt; fi; \
	if [ -n "$(COCO_ROOT)" ]; then $(DSO) retrain --config experiments/voc/retrain_coco.yaml --arch $(ARCH) data.root=$(COCO_ROOT) \
	  'data.extra=[voc_aug:$(VOC_ROOT)]' output_dir=$(VOC_RUN)/retrain_coco $$init $(ARGS); init=train.init=$(VOC_RUN)/retrain_coco/retrain.ckpt; fi; \
	if [ -d "$(VOC_ROOT)/VOCaug" ]; then $(DSO) retrain --config experiments/voc/retrain_aug.yaml --arch $(ARCH) data.root=$(VOC_ROOT) \
	  output_dir=$(VOC_RUN)/retrain_aug $$init $(ARGS); init=train.init=$(VOC_RUN)/retrain_aug/retrain.ckpt; fi; \
	$(DSO) retrain --config experiments/voc/retrain.yaml --arch $(ARCH) data.root=$(VOC_ROOT) output_dir=$(VOC_RUN)/retrain_voc $$init $(ARGS)
	$(DSO) report $(VOC_RUN)/retrain_voc

# Real Fashion-MNIST items pasted on 64×64 canvases, written in VOC2012's layout (and SBD's).
VOC_FMNIST ?= runs/voc_fmnist
voc-fmnist: install data
	$(PY) tools/fashion_mnist_voc.py $(VOC_FMNIST) --train 2000 --val 500 --side 64

# The segmentation search and retraining at micro scale here, through GluonCV's VOC reader, loss and metric;
# IMAGENET_ROOT=runs/imagenet_fmnist/rec (make imagenet-fmnist) adds the ImageNet stage before the search.
VOC_MICRO ?= runs/voc_micro
voc-micro: install data
	test -f $(VOC_FMNIST)/VOC2012/ImageSets/Segmentation/val.txt || $(MAKE) voc-fmnist
	$(if $(IMAGENET_ROOT),$(DSO) search --config experiments/voc/micro_imagenet_pretrain.yaml data.root=$(IMAGENET_ROOT) \
	  output_dir=$(VOC_MICRO)/imagenet_pretrain progress=false)
	$(DSO) search --config experiments/voc/micro_search.yaml data.root=$(VOC_FMNIST) output_dir=$(VOC_MICRO)/search \
	  $(if $(IMAGENET_ROOT),train.init=$(VOC_MICRO)/imagenet_pretrain/search.ckpt) $(ARGS)
	$(DSO) retrain --config experiments/voc/micro_retrain.yaml --arch $(VOC_MICRO)/search/architecture.yaml \
	  data.root=$(VOC_FMNIST) output_dir=$(VOC_MICRO)/retrain $(ARGS)
	$(DSO) report $(VOC_MICRO)/retrain

# Two workers on loopback vs one process on two CPU contexts: the micro search's architectures must match.
DIST_MICRO := --config tests/golden/micro.yaml data.root=tests/golden/fashion_mnist search.epochs=3 search.gamma=0.25
dist-micro: install
	rm -rf runs/dist_micro runs/dist_micro_one
	OMP_NUM_THREADS=1 MXNET_ENGINE_TYPE=NaiveEngine $(DSO) launch --workers 2 -- $(DSO) search $(DIST_MICRO) train.kvstore=dist_sync output_dir=runs/dist_micro
	OMP_NUM_THREADS=1 MXNET_ENGINE_TYPE=NaiveEngine $(DSO) search $(DIST_MICRO) context=cpu:0,1 output_dir=runs/dist_micro_one
	diff <(grep -v '  run: ' runs/dist_micro/architecture.yaml) <(grep -v '  run: ' runs/dist_micro_one/architecture.yaml) && echo "dist-micro: the 2-worker architecture equals the one-process one"

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
