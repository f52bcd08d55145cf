"""Where training inputs and caches live by default: the data folders beside the checkout (`../shared`, never
committed) and the gitignored `cache/` inside it. Every path is also a command-line option."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
DEFAULT_FACES = os.path.join(SHARED, "faces")
DEFAULT_OCCLUDERS = os.path.join(SHARED, "occluders")
DEFAULT_BACKGROUNDS = os.path.join(SHARED, "backgrounds")
CACHE = os.path.join(ROOT, "cache")
