"""sidebyside: learn PyTorch from TensorFlow with paired, runnable snippets."""
