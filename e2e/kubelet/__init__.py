"""A process kubelet: runs the Pods of a real API server as local processes (see `kubelet`)."""

from e2e.kubelet.kubelet import PodProcess, ProcessKubelet
from e2e.kubelet.launch import Launch, default_argv, plan_launch

__all__ = ["Launch", "PodProcess", "ProcessKubelet", "default_argv", "plan_launch"]
