import os

# Tests never reach a network: model hubs are offline, and nothing downloads weights.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

try:  # Tiny test models run faster on one thread than fighting over two cores.
    import torch

    torch.set_num_threads(1)
except ImportError:  # the film pipeline's tests need no torch
    pass
