#!/bin/sh
# Installs what tests/reference/*.py need, for Debian 12's own python (/usr/bin/python3). NOT a CI or runtime
# dependency: the fixtures are committed, and only regenerating or cross-checking them needs PyTorch.
#   torch 1.13 CPU (+ torchvision, which timm imports) from Debian; timm from PyPI WITHOUT its dependencies, so
#   pip can never pull a torch 2.x wheel. timm 0.9.16 imports without huggingface_hub and safetensors.
set -e
apt-get install -y --no-install-recommends python3-torch python3-torchvision python3-numpy python3-yaml python3-pip
/usr/bin/python3 -m pip install --no-deps --break-system-packages timm==0.9.16
/usr/bin/python3 -c "import torch, timm, numpy; print('torch', torch.__version__, 'timm', timm.__version__, 'numpy', numpy.__version__)"
