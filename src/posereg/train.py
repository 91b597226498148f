"""`python -m posereg.train`: same as posereg-train (posereg-sweep's Hydra child, torchrun's module).

Run it with -m only: `import posereg.train` would bind this module to the name `posereg.train`, which is the
API's training function (`posereg.train(cfg)`) for everyone else.
"""

from posereg.cli.train import main

if __name__ == "__main__":
    main()
