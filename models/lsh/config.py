"""Settings of the LSH-sparse network (``LSHConfig``), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

from models.base import ConfigError, NetConfig, _check

HASH_FAMILIES = ("srp", "simple_lsh")
PROJECTIONS = ("gaussian", "rademacher")
OVERFLOW_POLICIES = ("reservoir", "fifo")
SELECTIONS = ("topk", "threshold", "union", "hamming", "exact")  # exact: oracle
REBUILD_SCHEDULES = ("paper", "fixed", "decay")
INFERENCE_MODES = ("sparse", "dense")
TRAIN_MODES = ("example", "batch")
BATCH_SETS = ("shared", "per_example")
_MAX_TABLE_BYTES = 1 << 31  # 2 GiB of bucket slots is certainly a mistake


@dataclass(frozen=True)
class LSHConfig(NetConfig):
    """The paper's method with every choice exposed.

    Hashing: each hidden layer has ``L`` tables of ``K``-bit codes over its neurons' weight
    vectors (bias appended as one more coordinate, query side sees a constant 1). Before
    projecting, vectors may be pooled over contiguous blocks (``pool_input`` for the
    network input, ``pool_hidden`` for hidden layers; 1 = no pooling; the released code
    used 98 and 100). ``hash_family``: ``srp`` = signed Gaussian random projections
    (SimHash, the released code's); ``simple_lsh`` = Neyshabur & Srebro's asymmetric MIPS
    transform (neurons scaled by the layer's largest norm and given the extra coordinate
    sqrt(1 - |w|^2), queries normalised) followed by SRP.
    """

    active_fraction: float = 0.05
    hash_family: str = "srp"
    # entries of the random projections: N(0, 1) or +-1 (both stored in the weights' dtype)
    projections: str = "gaussian"
    K: int = 6  # bits per table
    L: int = 50  # tables per hidden layer
    # Block size of pooling before hashing (1 = none): 4 cuts query hashing and rebuild
    # cost 4x and measured no loss of accuracy on MNIST (784 -> 196, 1000 -> 250).
    pool_input: int = 4
    pool_hidden: int = 4
    bucket_capacity: int = 128  # slots per bucket; what overflows follows ``overflow``
    overflow: str = "reservoir"  # reservoir sampling or FIFO (newest evicts oldest)
    # topk by collision count | threshold (count >= min_count) | union (arrival order) |
    # hamming (every neuron ranked by sign bits shared with the query over all K*L bits:
    # SimHash sketch ranking, no multiplications, O(width) bit operations) |
    # exact (oracle: every pre-activation computed and counted; an upper bound, not LSH)
    selection: str = "hamming"
    min_count: int = 2  # for selection="threshold"
    pad_random: bool = False  # fill a short active set up to the cap with random neurons
    rebuild: str = "decay"  # paper | fixed (every rebuild_interval examples) | decay (SLIDE)
    rebuild_interval: int = 1000  # examples between rebuilds (first interval for "decay")
    rebuild_growth: float = 1.25  # "decay": each interval is this many times the previous
    rehash_changed_only: bool = False  # rehash only neurons whose weights changed
    inference: str = "sparse"  # sparse (through the tables, as the paper) or dense
    # example: the paper's protocol, one example at a time (batch_size 1), Hogwild across
    # threads | batch (new, not the paper's): batch_size examples train together through
    # BLAS on a gathered block of weights, their active sets chosen by ``batch_sets``
    # (see models.lsh.batch)
    train_mode: str = "example"
    # train_mode="batch" only: shared (one set per layer from the batch's mean input) |
    # per_example (each example hashes its own input and keeps its own set, as the paper's
    # examples do; the batch goes through BLAS on the union of the sets, each example's
    # pre-activations masked to its own set)
    batch_sets: str = "shared"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.hash_family in HASH_FAMILIES, "hash_family", self.hash_family,
               f"one of {HASH_FAMILIES}")
        _check(self.projections in PROJECTIONS, "projections", self.projections,
               f"one of {PROJECTIONS}")
        _check(isinstance(self.K, int) and 1 <= self.K <= 24, "K", self.K,
               "an integer number of bits per table in [1, 24]")
        _check(isinstance(self.L, int) and self.L >= 1, "L", self.L,
               "an integer number of tables >= 1")
        _check(self.pool_input >= 1, "pool_input", self.pool_input, "an integer >= 1")
        _check(self.pool_hidden >= 1, "pool_hidden", self.pool_hidden, "an integer >= 1")
        _check(self.bucket_capacity >= 1, "bucket_capacity", self.bucket_capacity,
               "an integer >= 1")
        _check(self.overflow in OVERFLOW_POLICIES, "overflow", self.overflow,
               f"one of {OVERFLOW_POLICIES}")
        _check(self.selection in SELECTIONS, "selection", self.selection,
               f"one of {SELECTIONS}")
        top = self.L if self.selection == "threshold" else 2**31
        _check(1 <= self.min_count <= top, "min_count", self.min_count,
               f"an integer in [1, L={self.L}] (a count of tables)")
        _check(self.rebuild in REBUILD_SCHEDULES, "rebuild", self.rebuild,
               f"one of {REBUILD_SCHEDULES}")
        _check(self.rebuild_interval >= 1, "rebuild_interval", self.rebuild_interval,
               "an integer number of examples >= 1")
        _check(self.rebuild_growth >= 1.0, "rebuild_growth", self.rebuild_growth,
               "a number >= 1")
        _check(self.inference in INFERENCE_MODES, "inference", self.inference,
               f"one of {INFERENCE_MODES}")
        _check(self.train_mode in TRAIN_MODES, "train_mode", self.train_mode,
               f"one of {TRAIN_MODES}")
        _check(self.batch_sets in BATCH_SETS, "batch_sets", self.batch_sets,
               f"one of {BATCH_SETS}")
        _check(self.batch_sets == "shared" or self.train_mode == "batch", "batch_sets",
               self.batch_sets, "'shared' (the default) unless train_mode='batch': the "
               "per-example mode always keeps each example's own set")
        _check(self.batch_size == 1 or self.train_mode == "batch", "batch_size",
               self.batch_size, "1 for the LSH network's train_mode='example' (one example "
               "at a time, Hogwild across threads, as the paper); set train_mode='batch' "
               "for mini-batches that share one active set")
        table_bytes = len(self.hidden) * self.L * (2**self.K) * self.bucket_capacity * 4
        if self.uses_tables and table_bytes > _MAX_TABLE_BYTES:
            raise ConfigError(
                f"bad settings K={self.K}, L={self.L}, bucket_capacity="
                f"{self.bucket_capacity}: the hash tables would take {table_bytes / 2**30:.1f}"
                " GiB; lower K, L or bucket_capacity"
            )

    @property
    def uses_tables(self) -> bool:
        """Whether selection probes bucket tables (hamming ranks sketches; exact computes)."""
        return self.selection not in ("hamming", "exact")
