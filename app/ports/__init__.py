"""Keras models ported to PyTorch from the web: uploads checked for size and type only
(`uploads.py`), each port run in the sandbox in the background and kept under the data
dir (`service.py`). The porting itself is the sandbox's (`sandbox/porter/`)."""
