"""Network code: backbones, layer taps, fine-tuning, devices and processes. Torch lives here."""
