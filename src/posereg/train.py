"""`python -m posereg.train`: same as posereg-train."""

from posereg.cli.train import main

if __name__ == "__main__":
    main()
