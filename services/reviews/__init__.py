"""The reviews service: staff appraisal cycles, reviews and their states,
objectives with progress, observations, evidence files and links, comments,
and per-cycle reports."""
