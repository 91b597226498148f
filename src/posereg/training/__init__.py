"""The training process's side of a run: the run lifecycle, the bookkeeping callbacks, the loggers, the GPU
speed options, train.log and the Lightning plugins. The run directory itself (files, keys, locks) is
`posereg.runs`; the recipe that uses all of this is `posereg.recipes.train`."""
