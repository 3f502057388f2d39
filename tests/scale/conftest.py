"""The scale suite's fixtures: a cluster of flowdeck processes on PostgreSQL and Redis."""

from scale_cluster import cluster, cluster_with_own_redis

__all__ = ["cluster", "cluster_with_own_redis"]
