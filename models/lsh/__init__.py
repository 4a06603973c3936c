"""LSH-sparse network (Spring & Shrivastava, KDD 2017), registered as model ``"lsh"``.

Files: ``config.py`` (LSHConfig), ``hashing.py`` (hash families), ``tables.py`` (bucket
storage and upkeep), ``kernels.py`` (all numba kernels), ``network.py`` (the model).
"""

from models.lsh.config import LSHConfig
from models.lsh.network import LSHNet

__all__ = ["LSHConfig", "LSHNet"]
