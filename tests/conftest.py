import os

# Tests never reach a network: model hubs are offline, and nothing downloads weights.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
