"""Helpers for running sk-mnist elsewhere: Dask clusters and worker set-up."""

from .._dask import local_cluster, worker_environment

__all__ = ["local_cluster", "worker_environment"]
