"""posereg's Python API, the functions `import posereg` exposes (lazily: importing posereg loads no torch).

    cfg = posereg.compose(["experiment=quickstart", "debug=tiny"])      # api/config.py
    metrics = posereg.train(cfg)                                         # api/train.py
    metrics = posereg.evaluate(cfg.paths.run_dir, split="test")          # api/evaluate.py
    model = posereg.load(cfg.paths.run_dir)                              # api/model.py
    result = model.predict(image)                                        # a PoseResult (inference/result.py)
    posereg.export(cfg.paths.run_dir, format="onnx")                     # api/export.py

Each function checks its arguments (one-line ConfigError), then imports its recipe (`posereg.recipes`); the
command-line tools are thin wrappers around the same functions. docs/python.md is the guide.
"""
