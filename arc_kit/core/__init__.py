"""The ARC side of the kit, no model in sight: tasks and grids, their text, reversible views, the kit's
own synthetic tasks, the competition's metric and submission file, file writing, named data sets."""
