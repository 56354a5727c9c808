"""Datasets: adapters for public layouts, preprocessing cache, splits and patch sampling."""
