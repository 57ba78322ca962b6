"""A run from a challenges file to submission.json: records, the two-phase schedule, worker processes, the
deadline, the reports, and the Kaggle kernel's own run."""
