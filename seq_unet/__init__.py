"""seq-unet: predict genome-wide tracks from DNA sequence with a 1D dilated U-Net."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("seq-unet")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
