"""Maintainer tools: notebook execution and the environment tests and kernels share."""
