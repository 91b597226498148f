"""What a command runs, top to bottom, once its arguments are checked: training (fit, test, metrics.json and the
model card), evaluation, prediction (`PoseModel`) and export. Heavy on purpose (torch, Lightning, timm): the
API (`posereg.api`) and the entry points (`posereg.cli`) import a recipe only when there is something to run."""
