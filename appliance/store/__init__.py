"""The image library on disk (chunks, manifests, sessions) and its operations:
import, export, verify, gc.  See docs/image-format.md."""

from appliance.store.library import Session, Store, parse_ref, version_key

__all__ = ["Session", "Store", "parse_ref", "version_key"]
