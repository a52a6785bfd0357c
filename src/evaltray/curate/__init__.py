"""From many traces to the few worth a reviewer's time: scrub, dedup, embed, cluster, plan and sample."""
