"""Default configuration files (one per component) and the loader that reads them."""

from config.settings import Settings, load_settings

__all__ = ["Settings", "load_settings"]
