"""setup.cfg holds the metadata and dependencies. Packages are found here because setup.cfg's
`find:` cannot add `tfllm.configs`, which lives in configs/ (package_dir maps it): every
package under tfllm/ is found, so a new subpackage cannot be left out of the wheel."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["tfllm", "tfllm.*"]) + ["tfllm.configs"])
