"""From many traces to the few worth a reviewer's time: dedup, embed, cluster, plan and sample."""
