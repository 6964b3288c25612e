"""Datasets that work offline: sklearn digits and generated data built in; torchvision sets from a local folder."""

from .digits import DatasetMissing, ImageData, load_digits_split, load_image_dataset

__all__ = ["DatasetMissing", "ImageData", "load_digits_split", "load_image_dataset"]
