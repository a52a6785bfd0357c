"""From the candidate pool to releases: review, the validation gate, the golden tray file, releases with their holdout, and export."""
