"""The pipeline's stages: each reads its inputs from the store and writes its outputs to it."""
